using System.Diagnostics;
using System.Runtime;
using TromAi.Gateway.Bench.Hosting;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// How long a path is exercised, unmeasured, before it is measured. A gateway that has just started compiles its hot
/// code for a long time: tiered compilation makes quick code first, then instrumented code, then optimised code, on
/// one background thread. On the 2-core VM of RESULTS.md (2026-12-02, 14:17 section) a latency window measured after
/// 15 s of streaming still saw the gateway compile 1,960 methods (3.9 s of JIT), and only a throughput step some 35 s
/// in saw fewer than 50. So by default the warm-up goes on in rounds until a round in which the gateway and the bench
/// together compiled fewer than <see cref="SettledMethods"/> methods (at least <see cref="MinimumSeconds"/>, at most
/// <see cref="MaximumSeconds"/>); <c>--warmup S</c> fixes it at S seconds instead. Each row's JSON says how many
/// methods the gateway still compiled while it was measured (<c>gatewayMethodsCompiled</c>).
/// </summary>
internal static class WarmUp
{
    private const double RoundSeconds = 5;
    private const double MinimumSeconds = 15;
    private const double MaximumSeconds = 120;
    private const long SettledMethods = 25;

    /// <param name="round">Exercises the path for the given seconds.</param>
    /// <returns>The seconds the warm-up took.</returns>
    public static async Task<double> RunAsync(
        BenchEnvironment environment, string label, double? fixedSeconds, Func<double, Task> round, CancellationToken cancellationToken)
    {
        if (fixedSeconds is { } seconds)
        {
            if (seconds > 0)
            {
                await round(seconds);
            }

            return seconds;
        }

        var begun = Stopwatch.GetTimestamp();
        while (true)
        {
            var before = await CompiledMethodsAsync(environment, cancellationToken);
            await round(RoundSeconds);
            var compiled = await CompiledMethodsAsync(environment, cancellationToken) - before;
            var elapsed = Stopwatch.GetElapsedTime(begun).TotalSeconds;
            environment.Log.WriteLine(Invariant($"# {label} warm-up: {elapsed:0} s, {compiled} methods compiled in its last {RoundSeconds:0} s"));
            if ((compiled < SettledMethods && elapsed >= MinimumSeconds) || elapsed >= MaximumSeconds)
            {
                return Math.Round(elapsed, 1);
            }
        }
    }

    private static async Task<long> CompiledMethodsAsync(BenchEnvironment environment, CancellationToken cancellationToken) =>
        JitInfo.GetCompiledMethodCount()
        + (environment.Gateway.Probe is { } probe ? (await probe.ReadAsync(collect: false, cancellationToken)).MethodsCompiled : 0);
}
