using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Telemetry;

/// <summary>Serves the gateway's meters, ASP.NET Core's and the runtime's in Prometheus text format.</summary>
public static class PrometheusMetricsEndpoint
{
    /// <summary>
    /// Maps <c>GET</c> <paramref name="path"/> (default: <c>Gateway:Telemetry:MetricsPath</c>,
    /// <c>/metrics</c>). Maps nothing when <c>Gateway:Telemetry:Enabled</c> is false. Being an
    /// endpoint of its own, it is matched before the proxy's catch-all route.
    /// </summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string? path = null)
    {
        var services = endpoints.ServiceProvider;
        var options = services.GetRequiredService<IOptions<TelemetryOptions>>().Value;
        if (!options.Enabled)
        {
            return NoEndpoint.Instance;
        }

        // Resolved now, so that it listens from start-up and the first scrape has the first requests.
        var collector = services.GetRequiredService<MetricsCollector>();
        return endpoints.MapGet(path ?? options.MetricsPath, context =>
            {
                var text = collector.Scrape();
                context.Response.ContentType = PrometheusTextFormat.ContentType;
                context.Response.Headers.CacheControl = "no-store";
                return context.Response.WriteAsync(text, context.RequestAborted);
            })
            .WithDisplayName("Prometheus metrics");
    }

    private sealed class NoEndpoint : IEndpointConventionBuilder
    {
        public static readonly NoEndpoint Instance = new();

        public void Add(Action<EndpointBuilder> convention)
        {
        }
    }
}
