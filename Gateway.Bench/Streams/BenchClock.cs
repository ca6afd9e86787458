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
}
