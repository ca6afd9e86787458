using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Instrumentation.AspNetCore;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace TromAi.Gateway.Telemetry;

public static class TelemetryServiceCollectionExtensions
{
    /// <summary>The service name on every export (<c>service.name</c>) and on <c>target_info</c>.</summary>
    public const string ServiceName = "tromai-gateway";

    // Named, so that the metric and trace exporters each get their own endpoint (an OTLP/HTTP
    // collector takes them on different paths) without sharing OpenTelemetry's default instance.
    private const string OtlpMetrics = "TromAi.Gateway.Metrics";
    private const string OtlpTraces = "TromAi.Gateway.Traces";

    /// <summary>
    /// Adds <see cref="GatewayMetrics"/>, options from <c>Gateway:Telemetry</c>, and OpenTelemetry:
    /// one meter provider for the gateway's meter, ASP.NET Core's (requests, Kestrel, SignalR
    /// connections, routing, rate limiting, authentication...), outgoing HTTP's and the runtime's,
    /// read by the Prometheus exporter behind <see cref="TelemetryEndpointRouteBuilderExtensions.MapPrometheusMetrics"/>
    /// and, when <c>Gateway:Telemetry:OtlpEndpoint</c> is set, pushed over OTLP together with traces.
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton<GatewayMetrics>();
        if (services.Any(descriptor => descriptor.ImplementationType == typeof(GatewaySeriesAtZero)))
        {
            return services; // added already: a second meter provider reader would count everything twice
        }

        var section = configuration.GetSection(TelemetryOptions.SectionName);
        services.AddMetrics();
        services.AddOptions<TelemetryOptions>()
            .Configure(options => Bind(section, options))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>());

        // Which pipelines exist is decided now; their settings are read from the validated options.
        var snapshot = Snapshot(section);
        if (!snapshot.Enabled)
        {
            return services; // the meters still exist, for dotnet-counters and the like
        }

        var exportOverOtlp = snapshot.OtlpEndpoint is not null;
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(ServiceName, serviceVersion: typeof(GatewayMetrics).Assembly.GetName().Version?.ToString()))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(GatewayMetrics.MeterName)
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()

                    // Exemplars would keep the tags the view removes, as their filtered attributes,
                    // and send them over OTLP: off, whatever OTEL_METRICS_EXEMPLAR_FILTER says.
                    .SetExemplarFilter(ExemplarFilterType.AlwaysOff)
                    .AddPrometheusExporter(prometheus =>
                    {
                        // Every scrape collects afresh: a scraper polls every 15 s or more, and an
                        // operator's curl right after an event should see it. The gateway's series
                        // are a few hundred, cheap to collect.
                        prometheus.ScrapeResponseCacheDurationMilliseconds = 0;

                        // Series as the README lists them, without otel_scope_* labels on each:
                        // instrument names are unique across the meters the gateway reads.
                        prometheus.ScopeInfoEnabled = false;
                    });
                if (exportOverOtlp)
                {
                    metrics.AddOtlpExporter(OtlpMetrics, configureExporterAndMetricReader: null);
                }
            });

        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) => metrics.AddView(MetricStreams.View(provider.GetRequiredService<IMeterFactory>())));
        if (exportOverOtlp)
        {
            // Traces go to the collector only: without an endpoint nothing listens to the sources,
            // and no span is even created.
            telemetry.WithTracing(tracing => tracing
                .AddSource(GatewayActivity.SourceName)
                .AddAspNetCoreInstrumentation() // SignalR's hub method spans too
                .AddHttpClientInstrumentation()
                .AddProcessor<AddressRedactingProcessor>()
                .AddOtlpExporter(OtlpTraces, configure: null));
            services.AddOptions<OtlpExporterOptions>(OtlpMetrics).Configure<IOptions<TelemetryOptions>>((exporter, options) =>
                ConfigureExporter(exporter, options.Value, "v1/metrics"));
            services.AddOptions<OtlpExporterOptions>(OtlpTraces).Configure<IOptions<TelemetryOptions>>((exporter, options) =>
                ConfigureExporter(exporter, options.Value, "v1/traces"));
            services.AddOptions<MetricReaderOptions>(OtlpMetrics).Configure<IOptions<TelemetryOptions>>((reader, options) =>
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)options.Value.OtlpExportInterval.TotalMilliseconds);
            services.AddOptions<AspNetCoreTraceInstrumentationOptions>().Configure<IOptions<TelemetryOptions>>((aspNetCore, options) =>
            {
                // A scrape every few seconds is not a request anyone wants to trace.
                var metricsPath = options.Value.MetricsPath;
                aspNetCore.Filter = context => !context.Request.Path.StartsWithSegments(metricsPath, StringComparison.OrdinalIgnoreCase);
            });
        }

        services.AddHostedService<GatewaySeriesAtZero>();
        return services;
    }

    /// <summary>
    /// <c>OtlpEndpoint</c> is the collector's address, as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is:
    /// over gRPC used as it is, over HTTP with each signal's path after it.
    /// </summary>
    private static void ConfigureExporter(OtlpExporterOptions exporter, TelemetryOptions options, string signalPath)
    {
        var endpoint = options.OtlpEndpoint!;
        exporter.Protocol = options.OtlpProtocol;
        exporter.Endpoint = options.OtlpProtocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath)
            : endpoint;
    }

    private static TelemetryOptions Snapshot(IConfigurationSection section)
    {
        var snapshot = new TelemetryOptions();
        try
        {
            section.Bind(snapshot);
        }
        catch (InvalidOperationException)
        {
            // Reported, with its key, by the validation at start-up.
        }

        return snapshot;
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
