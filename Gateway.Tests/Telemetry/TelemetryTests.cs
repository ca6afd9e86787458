namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>
/// The telemetry tests run one class at a time: an OTLP exporter listens to meters by name,
/// whichever container made them, and would otherwise attach to another test's instruments
/// mid-measurement (the allocation test counts every byte).
/// </summary>
internal static class TelemetryTests
{
    public const string Collection = "Telemetry";
}
