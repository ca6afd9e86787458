namespace TromAi.Gateway.Telemetry;

/// <summary>The Prometheus metric types the gateway exposes, one per kind of instrument.</summary>
internal enum MetricKind
{
    /// <summary>Counters and observable counters: a total that only grows.</summary>
    Counter,

    /// <summary>Up-down counters, gauges, observable up-down counters and gauges: a value now.</summary>
    Gauge,

    /// <summary>Histograms: cumulative buckets, sum and count.</summary>
    Histogram,
}
