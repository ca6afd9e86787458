using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Readers;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// The upstream leg's reader alone, in the bench's own process: SocketIOClient 3.0.6 as the gateway uses it today
/// against the gateway's own <c>SocketIOConnection</c>, on the same streams of the same upstream. What each costs
/// per received event: bytes allocated and CPU time of this process (the bench does nothing else meanwhile but
/// post the streams). Ours runs twice, waiting with zero-byte reads (its default) and with a held 1 KB buffer. Runs
/// A B C C B A, so load that drifts during the run falls on all alike.
/// </summary>
internal static class ReaderScenario
{
    // The gateway's whole budget per relayed event (issue 12): the reader alone must fit well inside it.
    private const double AllocatedBytesTarget = 200;
    private const int HeldBufferBytes = 1024;

    private enum Reader
    {
        SocketIOClient,
        ZeroByteReads,
        HeldBuffer,
    }

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var sessions = options.Sessions ?? 100;
        var rate = options.Rate ?? 100;
        var duration = options.Duration ?? 10;
        var warmup = options.Warmup ?? 3;
        var tokens = (int)Math.Ceiling(rate * duration);

        var runs = new Dictionary<Reader, List<ReaderRun>> { [Reader.SocketIOClient] = [], [Reader.ZeroByteReads] = [], [Reader.HeldBuffer] = [] };
        foreach (var reader in (Reader[])[Reader.ZeroByteReads, Reader.SocketIOClient, Reader.HeldBuffer, Reader.HeldBuffer, Reader.SocketIOClient, Reader.ZeroByteReads])
        {
            runs[reader].Add(await RunReaderAsync(environment, reader, sessions, rate, tokens, warmup, cancellationToken));
        }

        var o = ReaderRun.Combine(runs[Reader.ZeroByteReads]);
        var h = ReaderRun.Combine(runs[Reader.HeldBuffer]);
        var s = ReaderRun.Combine(runs[Reader.SocketIOClient]);
        return new ScenarioResult(
            "reader",
            Invariant($"upstream reader alone, in-process: {sessions} sessions × {rate:0.##} tok/s × {duration:0.##} s, runs A B C C B A (+{warmup:0.##} s warm-up each)"),
            Invariant($"SocketIOClient 3.0.6: {Bytes(s.BytesPerEvent)}/event, {Ms(s.CpuSecondsPerMillionEvents)} CPU-s/M events; {s.Integrity}"),
            Invariant($"SocketIOConnection, zero-byte reads: {Bytes(o.BytesPerEvent)}/event, {Ms(o.CpuSecondsPerMillionEvents)} CPU-s/M events; {o.Integrity} · held {HeldBufferBytes} B buffer: {Bytes(h.BytesPerEvent)}/event, {Ms(h.CpuSecondsPerMillionEvents)} CPU-s/M events; {h.Integrity}"),
            Invariant($"allocated ×{Ratio(o.BytesPerEvent / s.BytesPerEvent)} / ×{Ratio(h.BytesPerEvent / s.BytesPerEvent)}, CPU ×{Ratio(o.CpuSecondsPerMillionEvents / s.CpuSecondsPerMillionEvents)} / ×{Ratio(h.CpuSecondsPerMillionEvents / s.CpuSecondsPerMillionEvents)} (zero-byte / held ÷ SocketIOClient)"),
            Invariant($"own reader ≤ {AllocatedBytesTarget:0} B/event"),
            o.Intact && h.Intact && s.Intact && o.BytesPerEvent <= AllocatedBytesTarget,
            new JsonObject
            {
                ["sessions"] = sessions,
                ["tokensPerSecond"] = rate,
                ["durationS"] = duration,
                ["socketIOClient"] = s.ToJson(runs[Reader.SocketIOClient]),
                ["socketIOConnection"] = o.ToJson(runs[Reader.ZeroByteReads]),
                ["socketIOConnectionHeldBuffer"] = h.ToJson(runs[Reader.HeldBuffer]),
                ["heldBufferBytes"] = HeldBufferBytes,
                ["lostEvents"] = o.Lost + h.Lost + s.Lost,
            });
    }

    private static async Task<ReaderRun> RunReaderAsync(
        BenchEnvironment environment, Reader kind, int sessionCount, double rate, int tokens, double warmup, CancellationToken cancellationToken)
    {
        var name = kind.ToString();
        environment.Log.WriteLine($"# reader/{name}: connecting {sessionCount} sessions");
        var readers = new CountingReader[sessionCount];
        try
        {
            await Parallel.ForAsync(0, sessionCount, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (i, token) =>
                readers[i] = kind switch
                {
                    Reader.SocketIOClient => await SocketIOClientReader.ConnectAsync(environment.Upstream.BaseUrl, token),
                    Reader.ZeroByteReads => await SocketIOConnectionReader.ConnectAsync(environment.Upstream.BaseUrl, 0, token),
                    _ => await SocketIOConnectionReader.ConnectAsync(environment.Upstream.BaseUrl, HeldBufferBytes, token),
                });

            if (warmup > 0)
            {
                await StreamAsync(environment, readers, rate, Math.Max(1, (int)Math.Ceiling(rate * warmup)), cancellationToken);
            }

            var eventsBefore = readers.Sum(r => r.Events);
            GC.Collect();
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var cpuBefore = environment.SampleCpu();
            var failures = await StreamAsync(environment, readers, rate, tokens, cancellationToken);
            var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            var events = readers.Sum(r => r.Events) - eventsBefore;
            var run = new ReaderRun(events, (long)sessionCount * (tokens + 2), allocated, cpu, failures);
            environment.Log.WriteLine($"# reader/{name}: {run.ToJson([]).ToJsonString()}");
            return run;
        }
        finally
        {
            await Parallel.ForEachAsync(readers, async (reader, _) =>
            {
                if (reader is not null)
                {
                    await reader.DisposeAsync();
                }
            });
        }
    }

    /// <returns>Requests that failed.</returns>
    private static async Task<int> StreamAsync(BenchEnvironment environment, CountingReader[] readers, double rate, int tokens, CancellationToken cancellationToken)
    {
        foreach (var reader in readers)
        {
            reader.ExpectNextStream();
        }

        var posts = readers.Select((reader, i) => PostAsync(environment.DirectPredictions, reader.SocketId, i, rate, tokens, TimeSpan.FromSeconds(Math.Min(1, 1 / rate)) * i / readers.Length, cancellationToken));
        var failures = (await Task.WhenAll(posts)).Count(ok => !ok);
        try
        {
            await Task.WhenAll(readers.Select(r => r.Ended)).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
        catch (TimeoutException)
        {
            // Counted as lost events.
        }

        return failures;
    }

    private static async Task<bool> PostAsync(HttpClient http, string socketId, int index, double rate, int tokens, TimeSpan delay, CancellationToken cancellationToken)
    {
        await Task.Delay(delay, cancellationToken);
        var body = new JsonObject
        {
            ["question"] = "r" + index.ToString(CultureInfo.InvariantCulture),
            ["socketIOClientId"] = socketId,
            ["overrideConfig"] = new JsonObject { ["count"] = tokens, ["rate"] = rate, ["stamp"] = true },
        };
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync($"api/v1/prediction/{StreamRunner.Chatflow}", content, cancellationToken);
        await response.Content.ReadAsStringAsync(cancellationToken);
        return response.StatusCode == HttpStatusCode.OK;
    }

    private sealed record ReaderRun(long Events, long Expected, long AllocatedBytes, CpuUse Cpu, int FailedPosts)
    {
        public long Lost => Math.Max(0, Expected - Events);

        public bool Intact => Events == Expected && FailedPosts == 0;

        public double BytesPerEvent => Events > 0 ? (double)AllocatedBytes / Events : double.NaN;

        public double CpuSecondsPerMillionEvents => Events > 0 ? Cpu.Bench.TotalSeconds / Events * 1e6 : double.NaN;

        public string Integrity => Invariant($"{Events} of {Expected} events") + (FailedPosts > 0 ? Invariant($", {FailedPosts} failed posts") : "");

        /// <summary>Sums of the runs: per-event figures weighted by events.</summary>
        public static ReaderRun Combine(List<ReaderRun> runs) => new(
            runs.Sum(r => r.Events),
            runs.Sum(r => r.Expected),
            runs.Sum(r => r.AllocatedBytes),
            new CpuUse(
                TimeSpan.FromTicks(runs.Sum(r => r.Cpu.Wall.Ticks)),
                null,
                TimeSpan.FromTicks(runs.Sum(r => r.Cpu.Upstream?.Ticks ?? 0)),
                TimeSpan.FromTicks(runs.Sum(r => r.Cpu.Bench.Ticks)),
                TimeSpan.FromTicks(runs.Sum(r => r.Cpu.Other.Ticks))),
            runs.Sum(r => r.FailedPosts));

        public JsonObject ToJson(List<ReaderRun> runs) => new()
        {
            ["events"] = Events,
            ["expected"] = Expected,
            ["lost"] = Lost,
            ["failedPosts"] = FailedPosts,
            ["allocatedBytesPerEvent"] = LatencySummary.Round(BytesPerEvent),
            ["cpuSecondsPerMillionEvents"] = LatencySummary.Round(CpuSecondsPerMillionEvents),
            ["cpu"] = Cpu.ToJson(),
            ["runs"] = new JsonArray([.. runs.Select(r => (JsonNode)new JsonObject
            {
                ["allocatedBytesPerEvent"] = LatencySummary.Round(r.BytesPerEvent),
                ["cpuSecondsPerMillionEvents"] = LatencySummary.Round(r.CpuSecondsPerMillionEvents),
                ["otherCores"] = r.Cpu.ToJson()["otherCores"]?.DeepClone(),
            })]),
        };
    }
}
