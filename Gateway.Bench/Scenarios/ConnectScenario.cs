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
    private const int WarmupConnects = 10;

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var rate = options.Rate ?? 50;
        var duration = options.Duration ?? 10;
        var count = Math.Max(1, (int)Math.Round(rate * duration));

        var direct = await MeasureAsync(environment, BenchPath.Direct, rate, count, cancellationToken);
        var bridged = await MeasureAsync(environment, BenchPath.Bridged, rate, count, cancellationToken);

        var d = direct.Latency;
        var b = bridged.Latency;
        var failures = direct.Failures + bridged.Failures;
        return new ScenarioResult(
            "connect",
            Invariant($"{count} connects per path at {rate:0.##}/s, kept open until the path's run ends"),
            Invariant($"p50 {Ms(d.P50)} · p99 {Ms(d.P99)} · max {Ms(d.Max)} ms; {direct.Failures} failed"),
            Invariant($"p50 {Ms(b.P50)} · p99 {Ms(b.P99)} · max {Ms(b.Max)} ms; {bridged.Failures} failed"),
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

    private static async Task<Measurement> MeasureAsync(BenchEnvironment environment, BenchPath path, double rate, int count, CancellationToken cancellationToken)
    {
        // A few connects first, not timed: the first ones pay for JIT and connection set-up in every process.
        await BenchEnvironment.DisposeAllAsync(await environment.ConnectManyAsync(path, WarmupConnects, concurrency: 1, cancellationToken));

        environment.Log.WriteLine($"# connect/{path}: {count} connects at {rate}/s");
        var connects = new Task<BenchSession?>[count];
        var errors = new string?[count];
        var cpuBefore = environment.SampleCpu();
        var begun = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = TimeSpan.FromSeconds(i / rate) - Stopwatch.GetElapsedTime(begun);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, cancellationToken);
            }

            var index = i;
            connects[i] = ConnectOrReportAsync(environment, path, error => errors[index] = error, cancellationToken);
        }

        var sessions = await Task.WhenAll(connects);
        var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
        var times = new List<TimeSpan>(count);
        string? firstError = null;
        foreach (var session in sessions)
        {
            if (session is not null)
            {
                times.Add(session.ConnectTime);
            }
        }

        foreach (var error in errors)
        {
            firstError ??= error;
        }

        await BenchEnvironment.DisposeAllAsync(sessions);
        var measurement = new Measurement(LatencySummary.Of(times), count - times.Count, firstError, cpu);
        environment.Log.WriteLine($"# connect/{path}: {measurement.ToJson().ToJsonString()}");
        return measurement;
    }

    private static async Task<BenchSession?> ConnectOrReportAsync(BenchEnvironment environment, BenchPath path, Action<string> report, CancellationToken cancellationToken)
    {
        try
        {
            return await environment.ConnectAsync(path, cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            report(e.Message);
            return null;
        }
    }

    private sealed record Measurement(LatencySummary Latency, int Failures, string? FirstError, CpuUse Cpu)
    {
        public JsonObject ToJson() => new()
        {
            ["connectMs"] = Latency.ToJson(),
            ["failures"] = Failures,
            ["firstError"] = FirstError,
            ["cpu"] = Cpu.ToJson(),
        };
    }
}
