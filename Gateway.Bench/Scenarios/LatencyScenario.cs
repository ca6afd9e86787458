using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// N sessions per path, each receiving a stream at R tokens/s: end-to-end latency (upstream emit to client
/// handler) at p50/p90/p99/max on each path, and what the bridge adds at each percentile. The paths run one
/// after the other on the same upstream and gateway processes, so neither measures under the other's load.
/// </summary>
internal static class LatencyScenario
{
    private const double AddedP99TargetMs = 1;

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var sessions = options.Sessions ?? 200;
        var rate = options.Rate ?? 50;
        var duration = options.Duration ?? 20;
        var warmup = options.Warmup; // null: until the JIT has settled
        var plan = new StreamPlan(
            TokensPerStream: (int)Math.Ceiling(rate * duration),
            TokensPerSecond: rate,
            Stagger: TimeSpan.FromSeconds(Math.Min(1, 1 / rate)), // one token period: streams tick out of step
            DrainTimeout: TimeSpan.FromSeconds(30));

        var direct = await RunPathAsync(environment, BenchPath.Direct, sessions, plan, warmup, cancellationToken);
        var bridged = await RunPathAsync(environment, BenchPath.Bridged, sessions, plan, warmup, cancellationToken);

        var d = direct.Outcome.Latency;
        var b = bridged.Outcome.Latency;
        var added = new LatencySummary(b.Samples, b.P50 - d.P50, b.P90 - d.P90, b.P99 - d.P99, b.Max - d.Max);
        var intact = direct.Outcome.Intact && bridged.Outcome.Intact;

        return new ScenarioResult(
            "latency",
            Invariant($"{sessions} sessions × {rate:0.##} tok/s per path, {duration:0.##} s (after {direct.WarmupSeconds:0.#} s · {bridged.WarmupSeconds:0.#} s of warm-up)"),
            Invariant($"p50 {Ms(d.P50)} · p90 {Ms(d.P90)} · p99 {Ms(d.P99)} · max {Ms(d.Max)} ms; {direct.Outcome.Integrity}"),
            Invariant($"p50 {Ms(b.P50)} · p90 {Ms(b.P90)} · p99 {Ms(b.P99)} · max {Ms(b.Max)} ms; {bridged.Outcome.Integrity}; gateway {Ms(bridged.GatewayCpuSecondsPerMillionEvents)} CPU-s/M events, {bridged.GatewayWorkItemsPerEvent:0.##} thread-pool work items/event"),
            Invariant($"{SignedMs(added.P50)} · {SignedMs(added.P90)} · {SignedMs(added.P99)} · {SignedMs(added.Max)} ms"),
            Invariant($"added p99 ≤ {AddedP99TargetMs:0.#} ms"),
            intact && added.P99 <= AddedP99TargetMs,
            new JsonObject
            {
                ["sessions"] = sessions,
                ["tokensPerSecond"] = rate,
                ["durationS"] = duration,
                ["direct"] = direct.ToJson(),
                ["bridged"] = bridged.ToJson(),
                ["addedMs"] = added.ToJson(),
                ["lostEvents"] = direct.Outcome.Lost + bridged.Outcome.Lost,
                ["intact"] = intact,
            });
    }

    private static async Task<MeasuredStreams> RunPathAsync(
        BenchEnvironment environment,
        BenchPath path,
        int sessionCount,
        StreamPlan plan,
        double? warmupSeconds,
        CancellationToken cancellationToken)
    {
        environment.Log.WriteLine($"# latency/{path}: connecting {sessionCount} sessions");
        var sessions = await environment.ConnectManyAsync(path, sessionCount, concurrency: 32, cancellationToken);
        try
        {
            var warmedUp = await MeasuredStreams.WarmUpAsync(environment, path, sessions, plan, warmupSeconds, cancellationToken);
            environment.Log.WriteLine($"# latency/{path}: {sessionCount} streams × {plan.TokensPerStream} tokens at {plan.TokensPerSecond} tok/s");
            var measured = await MeasuredStreams.RunAsync(environment, path, sessions, plan, cancellationToken) with { WarmupSeconds = warmedUp };
            environment.Log.WriteLine($"# latency/{path}: {measured.ToJson().ToJsonString()}");
            return measured;
        }
        finally
        {
            await BenchEnvironment.DisposeAllAsync(sessions);
        }
    }
}
