using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Pushes the same meters as <c>/metrics</c> to an OpenTelemetry collector when
/// <see cref="TelemetryOptions.OtlpEndpoint"/> is set. OpenTelemetry.Extensions.Hosting is not
/// available, so this service stands in for it: the provider starts with the host and, being a
/// singleton of the container, is shut down (one last export) when the container is disposed.
/// </summary>
internal sealed partial class OtlpMetricsExport(IOptions<TelemetryOptions> options, ILogger<OtlpMetricsExport> logger) : IHostedService, IDisposable
{
    // Shutdown exports once more; a collector that does not answer must not hold the process much longer.
    private const int ShutdownTimeoutMilliseconds = 5000;

    private readonly Lock _gate = new();
    private MeterProvider? _provider;
    private bool _disposed;

    /// <summary>The running provider; null when no endpoint is configured, before start and after disposal.</summary>
    public MeterProvider? Provider
    {
        get
        {
            lock (_gate)
            {
                return _provider;
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!settings.Enabled || settings.OtlpEndpoint is not { } configured)
        {
            return Task.CompletedTask;
        }

        var endpoint = Endpoint(configured, settings.OtlpProtocol);
        var provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter([.. TelemetryServiceCollectionExtensions.Meters])
            .AddOtlpExporter((exporter, reader) =>
            {
                exporter.Endpoint = endpoint;
                exporter.Protocol = settings.OtlpProtocol;
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)settings.OtlpExportInterval.TotalMilliseconds;
            })
            .Build();

        lock (_gate)
        {
            if (_disposed || _provider is not null)
            {
                provider.Dispose();
                return Task.CompletedTask;
            }

            _provider = provider;
        }

        // Without user info: an endpoint may carry credentials, and logs must not.
        Log.Exporting(logger, settings.OtlpProtocol, endpoint.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped));
        return Task.CompletedTask;
    }

    // The provider outlives the other hosted services' shutdown, so that what they count on the way
    // out is exported too; the container's disposal ends it.
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        MeterProvider? provider;
        lock (_gate)
        {
            _disposed = true;
            provider = _provider;
            _provider = null;
        }

        if (provider is not null)
        {
            provider.Shutdown(ShutdownTimeoutMilliseconds);
            provider.Dispose();
        }
    }

    /// <summary>
    /// An endpoint set in code is used as it is; over HTTP the collector listens on
    /// <c>/v1/metrics</c>, so a bare <c>http://collector:4318</c> gets that path, as the
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> variable would.
    /// </summary>
    internal static Uri Endpoint(Uri configured, OtlpExportProtocol protocol) =>
        protocol == OtlpExportProtocol.HttpProtobuf && configured.AbsolutePath is "/" or ""
            ? new Uri(configured, "v1/metrics")
            : configured;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Exporting metrics over OTLP ({Protocol}) to {Endpoint}.")]
        public static partial void Exporting(ILogger logger, OtlpExportProtocol protocol, string endpoint);
    }
}
