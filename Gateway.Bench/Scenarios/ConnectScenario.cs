using System.Diagnostics;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// Connect-to-ready at a steady arrival rate (open loop: a connect starts on schedule whether or not earlier ones
/// finished). Direct: Socket.IO connect until the upstream accepted the socket. Bridged: SignalR <c>start()</c>,
/// which the gateway completes only once the connection's upstream session is connected.
/// </summary>
internal static class ConnectScenario
{
    private const double P99TargetMs = 10; // issue 12

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var rate = options.Rate ?? 50;
        var duration = options.Duration ?? 10;
        var count = Math.Max(1, (int)Math.Round(rate * duration));

        var direct = await MeasureAsync(environment, BenchPath.Direct, rate, options.Warmup, count, cancellationToken);
        var bridged = await MeasureAsync(environment, BenchPath.Bridged, rate, options.Warmup, count, cancellationToken);

        var d = direct.Latency;
        var b = bridged.Latency;
        var failures = direct.Failures + bridged.Failures;
        return new ScenarioResult(
            "connect",
            Invariant($"{count} connects per path at {rate:0.##}/s, kept open until the path's run ends, after {direct.Warmup.Samples} · {bridged.Warmup.Samples} untimed ones at the same rate, each closed once connected"),
            Invariant($"p50 {Ms(d.P50)} · p99 {Ms(d.P99)} · max {Ms(d.Max)} ms; {direct.Failures} failed; warm-up p99 {Ms(direct.Warmup.P99)} ms"),
            Invariant($"p50 {Ms(b.P50)} · p99 {Ms(b.P99)} · max {Ms(b.Max)} ms; {bridged.Failures} failed; warm-up p99 {Ms(bridged.Warmup.P99)} ms"),
            Invariant($"{SignedMs(b.P50 - d.P50)} · {SignedMs(b.P99 - d.P99)} ms (p50 · p99); p50 ratio {Ratio(b.P50 / d.P50)}"),
            Invariant($"bridged p99 ≤ {P99TargetMs:0} ms"),
            failures == 0 && b.P99 <= P99TargetMs,
            new JsonObject
            {
                ["connectsPerSecond"] = rate,
                ["connects"] = count,
                ["direct"] = direct.ToJson(),
                ["bridged"] = bridged.ToJson(),
                ["failures"] = failures,
            });
    }

    private static async Task<Measurement> MeasureAsync(BenchEnvironment environment, BenchPath path, double rate, double? warmupSeconds, int count, CancellationToken cancellationToken)
    {
        // Untimed first, at the same rate, until the JIT has settled (WarmUp). Each is closed once connected, so
        // they neither pile up nor close all at once while the measured ones arrive. Their figures are reported beside
        // the measured ones: that is what the first connects after a restart see.
        var warmups = new List<ConnectRun>();
        await WarmUp.RunAsync(environment, $"connect/{path}", warmupSeconds, async seconds =>
            warmups.Add(await ConnectAtRateAsync(environment, path, rate, Math.Max(1, (int)Math.Round(rate * seconds)), closeEach: true, cancellationToken)),
            cancellationToken);

        environment.Log.WriteLine($"# connect/{path}: {count} connects at {rate}/s");
        var cpuBefore = environment.SampleCpu();
        var run = await ConnectAtRateAsync(environment, path, rate, count, closeEach: false, cancellationToken);
        var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
        await BenchEnvironment.DisposeAllAsync(run.Sessions);
        var warmup = LatencySummary.Of([.. warmups.SelectMany(round => round.Times)]);
        var measurement = new Measurement(
            run.Latency, run.Failures + warmups.Sum(round => round.Failures), warmups.Select(round => round.FirstError).FirstOrDefault(error => error is not null) ?? run.FirstError, cpu, warmup);
        environment.Log.WriteLine($"# connect/{path}: {measurement.ToJson().ToJsonString()}");
        return measurement;
    }

    /// <summary>Open loop: connect <paramref name="count"/> times on schedule, whether or not earlier ones finished.</summary>
    /// <param name="closeEach">Close each session as soon as it has connected (its time is kept).</param>
    private static async Task<ConnectRun> ConnectAtRateAsync(BenchEnvironment environment, BenchPath path, double rate, int count, bool closeEach, CancellationToken cancellationToken)
    {
        var connects = new Task<BenchSession?>[count];
        var errors = new string?[count];
        var begun = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = TimeSpan.FromSeconds(i / rate) - Stopwatch.GetElapsedTime(begun);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, cancellationToken);
            }

            var index = i;
            connects[i] = ConnectOrReportAsync(environment, path, closeEach, error => errors[index] = error, cancellationToken);
        }

        var sessions = await Task.WhenAll(connects);
        var times = new List<TimeSpan>(count);
        foreach (var session in sessions)
        {
            if (session is not null)
            {
                times.Add(session.ConnectTime);
            }
        }

        return new ConnectRun(sessions, times, LatencySummary.Of(times), count - times.Count, errors.FirstOrDefault(error => error is not null));
    }

    private static async Task<BenchSession?> ConnectOrReportAsync(BenchEnvironment environment, BenchPath path, bool close, Action<string> report, CancellationToken cancellationToken)
    {
        try
        {
            var session = await environment.ConnectAsync(path, cancellationToken);
            if (close)
            {
                await session.DisposeAsync();
            }

            return session;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            report(e.Message);
            return null;
        }
    }

    private sealed record ConnectRun(BenchSession?[] Sessions, List<TimeSpan> Times, LatencySummary Latency, int Failures, string? FirstError);

    /// <param name="Failures">Of the warm-up's connects too.</param>
    private sealed record Measurement(LatencySummary Latency, int Failures, string? FirstError, CpuUse Cpu, LatencySummary Warmup)
    {
        public JsonObject ToJson() => new()
        {
            ["connectMs"] = Latency.ToJson(),
            ["warmupConnectMs"] = Warmup.ToJson(),
            ["failures"] = Failures,
            ["firstError"] = FirstError,
            ["cpu"] = Cpu.ToJson(),
        };
    }
}
