using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Probe;
using TromAi.Gateway.Bench.Streams;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// A stream run on one path with what each process spent on it: CPU time of the gateway, the upstream and the
/// bench (all three share the machine's cores), and the bytes the gateway allocated.
/// </summary>
internal sealed record MeasuredStreams(
    BenchPath Path,
    StreamOutcome Outcome,
    CpuUse Cpu,
    ManagedHeapSample? GatewayHeapBefore,
    ManagedHeapSample? GatewayHeapAfter,
    BenchGcDelta BenchGcs)
{
    public long? GatewayAllocatedBytes => GatewayHeapAfter?.AllocatedBytes - GatewayHeapBefore?.AllocatedBytes;

    /// <summary>Gateway CPU seconds per million events delivered. On the direct path it is the idle gateway's cost, near zero.</summary>
    public double GatewayCpuSecondsPerMillionEvents => Cpu.Gateway is { } cpu && Outcome.Events > 0 ? cpu.TotalSeconds / Outcome.Events * 1e6 : double.NaN;

    /// <summary>
    /// Thread-pool work items the gateway ran per event: each is a hop between threads (a socket completion, a
    /// pipe's reader woken, a queue's consumer), the cost the CPU figure cannot name. Counted, so unlike the CPU
    /// time it does not move with what else the machine runs.
    /// </summary>
    public double GatewayWorkItemsPerEvent => GatewayHeapBefore is { } before && GatewayHeapAfter is { } after && Outcome.Events > 0
        ? (double)(after.ThreadPoolWorkItems - before.ThreadPoolWorkItems) / Outcome.Events
        : double.NaN;

    public double GatewayBytesPerEvent => GatewayAllocatedBytes is { } bytes && Outcome.Events > 0 ? (double)bytes / Outcome.Events : double.NaN;

    /// <summary>The seconds of unmeasured streaming before this run (<see cref="WarmUpAsync"/>).</summary>
    public double WarmupSeconds { get; init; }

    /// <summary>
    /// The same streams, not measured, for <paramref name="seconds"/> or until the JIT has settled (<see cref="WarmUp"/>):
    /// the gateway's code reaches its optimised form and connection pools fill, so a measurement is of the steady
    /// state, not of start-up.
    /// </summary>
    /// <returns>The seconds it took.</returns>
    public static Task<double> WarmUpAsync(
        BenchEnvironment environment,
        BenchPath path,
        IReadOnlyList<BenchSession> sessions,
        StreamPlan plan,
        double? seconds,
        CancellationToken cancellationToken) =>
        WarmUp.RunAsync(environment, path.ToString(), seconds, async lasting =>
        {
            var outcome = await StreamRunner.RunOnePerSessionAsync(environment.PredictionsFor(path), sessions, plan.Lasting(lasting), cancellationToken);
            environment.Log.WriteLine($"# {path} warm-up round, {lasting:0.#} s: {outcome.Integrity}");
        }, cancellationToken);

    public static async Task<MeasuredStreams> RunAsync(
        BenchEnvironment environment,
        BenchPath path,
        IReadOnlyList<BenchSession> sessions,
        StreamPlan plan,
        CancellationToken cancellationToken)
    {
        var probe = environment.Gateway.Probe;
        var heapBefore = probe is null ? null : await probe.ReadAsync(collect: false, cancellationToken);
        var benchGcs = BenchGcDelta.Start();
        var cpuBefore = environment.SampleCpu();
        var outcome = await StreamRunner.RunOnePerSessionAsync(environment.PredictionsFor(path), sessions, plan, cancellationToken);
        var cpuAfter = environment.SampleCpu();
        var heapAfter = probe is null ? null : await probe.ReadAsync(collect: false, cancellationToken);

        return new MeasuredStreams(path, outcome, CpuUse.Between(cpuBefore, cpuAfter), heapBefore, heapAfter, benchGcs.Stop());
    }

    /// <summary>CPU use during the run, and the gateway's cost per event.</summary>
    public JsonObject CpuJson()
    {
        var json = Cpu.ToJson();
        json["gatewayCpuSecondsPerMillionEvents"] = LatencySummary.Round(GatewayCpuSecondsPerMillionEvents);
        json["gatewayAllocatedBytesPerEvent"] = LatencySummary.Round(GatewayBytesPerEvent);
        json["gatewayWorkItemsPerEvent"] = LatencySummary.Round(GatewayWorkItemsPerEvent);
        if (GatewayHeapBefore is { } compiledBefore && GatewayHeapAfter is { } compiledAfter)
        {
            json["gatewayMethodsCompiled"] = compiledAfter.MethodsCompiled - compiledBefore.MethodsCompiled;
            json["gatewayJitMs"] = Math.Round(compiledAfter.JitMs - compiledBefore.JitMs, 1);
        }

        json["gatewayGcs"] = GatewayHeapBefore is { } before && GatewayHeapAfter is { } after
            ? new JsonObject
            {
                ["gen0"] = after.Gen0 - before.Gen0,
                ["gen1"] = after.Gen1 - before.Gen1,
                ["gen2"] = after.Gen2 - before.Gen2,
                ["pauseMs"] = Math.Round(after.PauseMs - before.PauseMs, 1),
            }
            : null;
        json["benchGcs"] = BenchGcs.ToJson();
        // The bench's clients on this path: on the direct path that is the same Socket.IO stack as the gateway's upstream leg.
        json["benchAllocatedBytesPerEvent"] = Outcome.Events > 0 ? Math.Round((double)BenchGcs.AllocatedBytes / Outcome.Events, 1) : null;
        return json;
    }

    public JsonObject ToJson()
    {
        var json = Outcome.ToJson();
        json["warmupS"] = WarmupSeconds;
        json["cpu"] = CpuJson();
        return json;
    }
}

/// <summary>The bench process's own collections during a run: a client-side pause delays both paths' events alike, and explains a tail.</summary>
internal sealed record BenchGcDelta(int Gen0, int Gen1, int Gen2, TimeSpan Pause, long AllocatedBytes)
{
    public static BenchGcDelta Start() => new(
        GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes(precise: true));

    public BenchGcDelta Stop() => new(
        GC.CollectionCount(0) - Gen0,
        GC.CollectionCount(1) - Gen1,
        GC.CollectionCount(2) - Gen2,
        GC.GetTotalPauseDuration() - Pause,
        GC.GetTotalAllocatedBytes(precise: true) - AllocatedBytes);

    public JsonObject ToJson() => new()
    {
        ["gen0"] = Gen0,
        ["gen1"] = Gen1,
        ["gen2"] = Gen2,
        ["pauseMs"] = Math.Round(Pause.TotalMilliseconds, 1),
        ["allocatedBytes"] = AllocatedBytes,
    };
}
