using System.Diagnostics.Metrics;
using OpenTelemetry.Metrics;

namespace TromAi.Gateway.Telemetry;

/// <summary>The one view of the gateway's meter provider: which instruments it collects, with which tags.</summary>
internal static class MetricStreams
{
    /// <summary>
    /// OpenTelemetry subscribes to meters by name, process-wide: a meter made by another
    /// container's <see cref="IMeterFactory"/> (a second gateway in the same process, as in the
    /// tests) is dropped, so each gateway reports its own requests and sessions. Meters without a
    /// scope (the runtime's, a plain <see cref="HttpClient"/>'s) belong to the process and stay.
    /// Every other instrument loses the <see cref="AddressAttributes"/>; the gateway's own tags
    /// never hold one, so its hot path is not given the filter's cost.
    /// </summary>
    public static Func<Instrument, MetricStreamConfiguration?> View(IMeterFactory ours) => instrument => instrument.Meter switch
    {
        { Scope: { } scope } when !ReferenceEquals(scope, ours) => MetricStreamConfiguration.Drop,
        { Name: GatewayMetrics.MeterName } => null,
        _ => new MetricStreamConfiguration { ExcludedTagKeys = AddressAttributes.Keys },
    };
}
