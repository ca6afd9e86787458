using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Telemetry;

public static class TelemetryEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>GET</c> <paramref name="path"/> (default: <c>Gateway:Telemetry:MetricsPath</c>,
    /// <c>/metrics</c>) to OpenTelemetry's Prometheus exporter; nothing when
    /// <c>Gateway:Telemetry:Enabled</c> is false. Being an endpoint of its own, it is matched before
    /// the proxy's catch-all route.
    /// </summary>
    /// <remarks>
    /// OpenTelemetry.Exporter.Prometheus.AspNetCore rather than prometheus-net.AspNetCore, though
    /// the first is a beta: it reads the one meter provider that also feeds OTLP, so the address
    /// filter and the per-gateway scoping (<see cref="MetricStreams"/>) are applied once for both.
    /// prometheus-net would be a second collector, its own bridge listening to the same meters,
    /// beside its own default metrics: two pipelines again. The beta's risk is in its options
    /// (renamed between betas), not in the exposition; the version is pinned in
    /// Directory.Packages.props and the tests read the scrape as a Prometheus server does.
    /// </remarks>
    public static IEndpointConventionBuilder? MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string? path = null)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<TelemetryOptions>>().Value;
        return options.Enabled ? endpoints.MapPrometheusScrapingEndpoint(path ?? options.MetricsPath).WithDisplayName("Prometheus metrics") : null;
    }
}
