using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Telemetry;

public static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// The meters exposed at <c>/metrics</c> and exported over OTLP: the gateway's and those the
    /// framework already has (requests, Kestrel connections, SignalR connections, which are on
    /// <c>Microsoft.AspNetCore.Http.Connections</c>: ASP.NET Core 10 has no <c>Microsoft.AspNetCore.SignalR</c>
    /// meter, routing, rate limiting, outgoing HTTP to TROM.AI, the runtime).
    /// </summary>
    internal static readonly IReadOnlyList<string> Meters =
    [
        GatewayMetrics.MeterName,
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Http.Connections",
        "Microsoft.AspNetCore.Routing",
        "Microsoft.AspNetCore.RateLimiting",
        "Microsoft.AspNetCore.Diagnostics",
        "Microsoft.AspNetCore.Authentication",
        "Microsoft.AspNetCore.Authorization",
        "Microsoft.AspNetCore.MemoryPool",
        "System.Net.Http",
        "System.Net.NameResolution",
        "System.Runtime",
    ];

    /// <summary>
    /// Adds <see cref="GatewayMetrics"/>, the collector behind <see cref="PrometheusMetricsEndpoint.MapPrometheusMetrics"/>,
    /// options from <c>Gateway:Telemetry</c>, and, when <c>Gateway:Telemetry:OtlpEndpoint</c> is set,
    /// an OTLP exporter that runs while the host does.
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(TelemetryOptions.SectionName);
        services.AddMetrics();
        services.AddOptions<TelemetryOptions>()
            .Configure(options => Bind(section, options))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>());
        services.TryAddSingleton<GatewayMetrics>();
        services.TryAddSingleton(sp => new MetricsCollector(
            Meters, sp.GetRequiredService<IMeterFactory>(), sp.GetRequiredService<ILogger<MetricsCollector>>()));
        if (!services.Any(descriptor => descriptor.ServiceType == typeof(OtlpMetricsExport)))
        {
            services.AddSingleton<OtlpMetricsExport>();
            services.AddHostedService(sp => sp.GetRequiredService<OtlpMetricsExport>());
        }

        return services;
    }

    /// <summary>A value that does not parse (an OtlpEndpoint of "collector") fails validation naming its key, like every other setting.</summary>
    private static void Bind(IConfigurationSection section, TelemetryOptions options)
    {
        try
        {
            section.Bind(options);
        }
        catch (InvalidOperationException e)
        {
            throw new OptionsValidationException(TelemetryOptions.SectionName, typeof(TelemetryOptions), [e.Message]);
        }
    }
}
