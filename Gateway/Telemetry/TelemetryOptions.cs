using OpenTelemetry.Exporter;

namespace TromAi.Gateway.Telemetry;

/// <summary>The <c>Gateway:Telemetry</c> section: where the gateway's metrics can be read, where its metrics and traces are sent.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = GatewayOptions.SectionName + ":Telemetry";

    /// <summary>
    /// Serves <see cref="MetricsPath"/> and exports to <see cref="OtlpEndpoint"/>. False: neither, and
    /// no OpenTelemetry at all; the meters still exist for <c>dotnet-counters</c> and the like.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where the gateway answers Prometheus scrapes. It takes precedence over a TROM.AI path of the same name.</summary>
    public string MetricsPath { get; set; } = "/metrics";

    /// <summary>
    /// An OpenTelemetry collector to push metrics and traces to; none when unset (and then no spans
    /// are made). Its address only, as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>: over HTTP the gateway
    /// adds <c>/v1/metrics</c> and <c>/v1/traces</c>.
    /// </summary>
    public Uri? OtlpEndpoint { get; set; }

    /// <summary><c>Grpc</c> (the collector's port 4317) or <c>HttpProtobuf</c> (port 4318).</summary>
    public OtlpExportProtocol OtlpProtocol { get; set; } = OtlpExportProtocol.Grpc;

    /// <summary>
    /// How often metrics are pushed to <see cref="OtlpEndpoint"/>; once more at shutdown. Spans go in
    /// batches, as OpenTelemetry's batch processor sends them (every 5 s, or sooner when 512 wait).
    /// </summary>
    public TimeSpan OtlpExportInterval { get; set; } = TimeSpan.FromSeconds(60);
}
