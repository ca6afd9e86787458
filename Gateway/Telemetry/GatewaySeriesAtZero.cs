using OpenTelemetry.Metrics;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Reports every gateway series at 0 when the host starts (<see cref="GatewayMetrics.ReportZeros"/>),
/// so that a fresh instance's first scrape already has them.
/// </summary>
/// <param name="provider">
/// Taken only so that it exists first: OpenTelemetry aggregates what is measured after its
/// provider starts listening, and a 0 added before that would be lost.
/// </param>
internal sealed class GatewaySeriesAtZero(MeterProvider provider, GatewayMetrics metrics) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = provider;
        metrics.ReportZeros();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
