using System.Diagnostics;

namespace TromAi.Gateway.Bench.Streams;

/// <summary>
/// Milliseconds since the Unix epoch, built like the upstream's token stamps
/// (<c>performance.timeOrigin + performance.now()</c>): the wall clock read once, then the monotonic clock.
/// Both sides then drift alike, and a wall-clock step during a run cannot distort a latency.
/// </summary>
internal static class BenchClock
{
    private static readonly long OriginTimestamp = Stopwatch.GetTimestamp();
    private static readonly double OriginEpochMs = (DateTime.UtcNow - DateTime.UnixEpoch).TotalMilliseconds;

    public static double NowEpochMs() => OriginEpochMs + Stopwatch.GetElapsedTime(OriginTimestamp).TotalMilliseconds;

    /// <summary>
    /// The upstream's stamp clock minus this one, measured when the upstream started
    /// (<c>UpstreamServer.MeasureClockOffsetAsync</c>). Each reads the wall clock once at its start: a wall clock
    /// stepped between the two starts would otherwise shift every latency by the step (−538 ms in a run of
    /// 2026-12-02 on a VM whose clock was being corrected).
    /// </summary>
    public static double UpstreamOffsetMs { get; set; }
}
