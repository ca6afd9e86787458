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
/// When nginx is installed, the direct path's client also runs through nginx's WebSocket proxy: what a plain relay
/// adds and costs per event on the same machine, side by side, as the yardstick for the bridge's figures.
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
        var nginx = await environment.StartNginxAsync(cancellationToken) is { } proxy
            ? await RunNginxPathAsync(environment, proxy, sessions, plan, warmup, cancellationToken)
            : null;
        var bridged = await RunPathAsync(environment, BenchPath.Bridged, sessions, plan, warmup, cancellationToken);

        var d = direct.Outcome.Latency;
        var b = bridged.Outcome.Latency;
        var added = new LatencySummary(b.Samples, b.P50 - d.P50, b.P90 - d.P90, b.P99 - d.P99, b.Max - d.Max);
        var intact = direct.Outcome.Intact && bridged.Outcome.Intact && (nginx?.Streams.Outcome.Intact ?? true);
        var nginxCell = nginx is { } relayed
            ? Invariant($"; through nginx: p50 {Ms(relayed.Streams.Outcome.Latency.P50)} · p99 {Ms(relayed.Streams.Outcome.Latency.P99)} ms ({SignedMs(relayed.Streams.Outcome.Latency.P50 - d.P50)} · {SignedMs(relayed.Streams.Outcome.Latency.P99 - d.P99)} ms over direct), nginx {Ms(relayed.CpuSecondsPerMillionEvents)} CPU-s/M events; {relayed.Streams.Outcome.Integrity}")
            : "; nginx not installed";

        return new ScenarioResult(
            "latency",
            Invariant($"{sessions} sessions × {rate:0.##} tok/s per path, {duration:0.##} s (after {direct.WarmupSeconds:0.#} s · {bridged.WarmupSeconds:0.#} s of warm-up)"),
            Invariant($"p50 {Ms(d.P50)} · p90 {Ms(d.P90)} · p99 {Ms(d.P99)} · max {Ms(d.Max)} ms; {direct.Outcome.Integrity}{nginxCell}"),
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
                ["nginx"] = nginx?.ToJson(d) ?? new JsonObject { ["installed"] = false, ["note"] = "nginx not installed" },
                ["bridged"] = bridged.ToJson(),
                ["addedMs"] = added.ToJson(),
                ["lostEvents"] = direct.Outcome.Lost + bridged.Outcome.Lost + (nginx?.Streams.Outcome.Lost ?? 0),
                ["intact"] = intact,
            });
    }

    /// <summary>The nginx path, with nginx's own CPU time (master and worker) over the measured streams.</summary>
    private static async Task<NginxStreams> RunNginxPathAsync(
        BenchEnvironment environment,
        NginxProxy proxy,
        int sessionCount,
        StreamPlan plan,
        double? warmupSeconds,
        CancellationToken cancellationToken)
    {
        var cpuBefore = TimeSpan.Zero;
        var measured = await RunPathAsync(environment, BenchPath.Nginx, sessionCount, plan, warmupSeconds, cancellationToken,
            beforeMeasuring: () => cpuBefore = proxy.CpuTime());
        var cpu = proxy.CpuTime() - cpuBefore;
        return new NginxStreams(measured, measured.Outcome.Events > 0 ? cpu.TotalSeconds / measured.Outcome.Events * 1e6 : double.NaN);
    }

    private static async Task<MeasuredStreams> RunPathAsync(
        BenchEnvironment environment,
        BenchPath path,
        int sessionCount,
        StreamPlan plan,
        double? warmupSeconds,
        CancellationToken cancellationToken,
        Action? beforeMeasuring = null)
    {
        environment.Log.WriteLine($"# latency/{path}: connecting {sessionCount} sessions");
        var sessions = await environment.ConnectManyAsync(path, sessionCount, concurrency: 32, cancellationToken);
        try
        {
            var warmedUp = await MeasuredStreams.WarmUpAsync(environment, path, sessions, plan, warmupSeconds, cancellationToken);
            environment.Log.WriteLine($"# latency/{path}: {sessionCount} streams × {plan.TokensPerStream} tokens at {plan.TokensPerSecond} tok/s");
            beforeMeasuring?.Invoke();
            var measured = await MeasuredStreams.RunAsync(environment, path, sessions, plan, cancellationToken) with { WarmupSeconds = warmedUp };
            environment.Log.WriteLine($"# latency/{path}: {measured.ToJson().ToJsonString()}");
            return measured;
        }
        finally
        {
            await BenchEnvironment.DisposeAllAsync(sessions);
        }
    }

    /// <summary>The nginx path's streams and what nginx spent per million events relayed.</summary>
    private sealed record NginxStreams(MeasuredStreams Streams, double CpuSecondsPerMillionEvents)
    {
        public JsonObject ToJson(LatencySummary direct)
        {
            var json = Streams.Outcome.ToJson();
            json["warmupS"] = Streams.WarmupSeconds;
            json["nginxCpuSecondsPerMillionEvents"] = LatencySummary.Round(CpuSecondsPerMillionEvents);
            var latency = Streams.Outcome.Latency;
            json["addedMs"] = new LatencySummary(latency.Samples, latency.P50 - direct.P50, latency.P90 - direct.P90, latency.P99 - direct.P99, latency.Max - direct.Max).ToJson();
            return json;
        }
    }
}
