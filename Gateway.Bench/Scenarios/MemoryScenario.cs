using System.Diagnostics;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// The gateway process's memory with 0 and N idle bridged sessions, and again while every session streams:
/// RSS from /proc (the process as the OS sees it) and live managed bytes after a full GC (through the probe).
/// Each size is measured on a fresh, warmed-up gateway process, so no size inherits the heap of another.
/// </summary>
internal static class MemoryScenario
{
    private const double IdleTargetBytes = 40 * 1024; // issue 12

    // Descriptors a process may open besides its per-session sockets while a step runs (pools, listeners, runtime).
    private const int ReservedFiles = 400;

    private const int WarmupSessions = 10;

    // Enough direct sessions that a few unrelated objects in the bench process do not move the per-session figure.
    private const int DirectSessions = 1000;

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        if (environment.Gateway.ProcessId is null)
        {
            throw new InvalidOperationException("The memory scenario reads the gateway's /proc: let the bench start the gateway, or pass --gateway-pid.");
        }

        var settings = new Settings(
            Rate: options.Rate ?? 1,
            StreamSeconds: options.Duration ?? 15,
            Settle: TimeSpan.FromSeconds(options.Settle),
            Concurrency: options.Concurrency ?? 64,
            PostViaGateway: options.PostViaGateway);

        // Every process here inherits one open-file limit. A bridged session costs the gateway two sockets (its
        // client's and its upstream's); while it streams, the bench and the upstream hold two each as well (a
        // session socket and a prediction request). Requesting through the gateway adds two more there.
        // The bench holds the most descriptors besides those (pools, pipes to its children), so it sets the margin.
        var fileLimit = ProcessMetrics.OpenFileLimit();
        var reserved = ProcessMetrics.OpenFiles(Environment.ProcessId) + ReservedFiles;
        var maxSessions = (fileLimit - reserved) / (settings.PostViaGateway ? 4 : 2);

        // First, while the bench process holds nothing else that a collection could still reclaim.
        var stepSizes = options.Steps ?? [1000, 5000, 10000];
        var direct = await MeasureDirectAsync(environment, Math.Min(DirectSessions, Math.Min(stepSizes.Max(), maxSessions)), settings, cancellationToken);

        var steps = new List<MemoryStep>();
        foreach (var requested in stepSizes)
        {
            var sessions = Math.Min(requested, maxSessions);
            if (steps.Count > 0 && environment.Gateway.IsOwned)
            {
                await environment.RestartGatewayAsync(cancellationToken);
            }

            steps.Add(await MeasureAsync(environment, requested, sessions, settings, cancellationToken));
        }

        var largest = steps[^1];
        var intact = true;
        foreach (var step in steps)
        {
            intact &= step.Streaming.Intact;
        }

        return new ScenarioResult(
            "memory",
            Invariant($"idle bridged sessions {string.Join(" / ", steps.ConvertAll(s => s.Label))}{(steps.Exists(s => s.Sessions < s.Requested) ? $" (* capped: open-file limit {fileLimit})" : "")}, fresh gateway each; then each streaming {settings.Rate:0.##} tok/s for {settings.StreamSeconds:0.##} s, requested via the {(settings.PostViaGateway ? "gateway" : "upstream")}"),
            Invariant($"Socket.IO client (the gateway's upstream leg) in the bench process: {Bytes(direct.BytesPerSession)} managed per session ({Count(direct.Sessions)} sessions)"),
            Invariant($"per session, RSS / managed: idle {string.Join(" · ", steps.ConvertAll(s => $"{s.Label} {Bytes(s.IdleRssPerSession)} / {Bytes(s.IdleHeapPerSession)}"))}; streaming {string.Join(" · ", steps.ConvertAll(s => $"{s.Label} {Bytes(s.StreamingRssPerSession)} / {Bytes(s.StreamingHeapPerSession)}"))}; 0 sessions: {Bytes(steps[0].Baseline.RssBytes)} RSS; {IntegrityOf(steps)}"),
            Invariant($"at {largest.Label}, managed bytes beyond the upstream leg (SignalR connection, relay): {Bytes(largest.IdleHeapPerSession - direct.BytesPerSession)} per session"),
            Invariant($"≤ {Bytes(IdleTargetBytes)} RSS per idle session at 10k"),
            intact && largest.IdleRssPerSession <= IdleTargetBytes,
            new JsonObject
            {
                ["openFileLimit"] = fileLimit,
                ["reservedFiles"] = reserved,
                ["maxSessions"] = maxSessions,
                ["streamTokensPerSecond"] = settings.Rate,
                ["streamS"] = settings.StreamSeconds,
                ["requestsVia"] = settings.PostViaGateway ? "gateway" : "upstream",
                ["steps"] = new JsonArray([.. steps.ConvertAll(s => (JsonNode)s.ToJson())]),
                ["directClient"] = new JsonObject { ["sessions"] = direct.Sessions, ["managedBytesPerSession"] = Math.Round(direct.BytesPerSession) },
                ["idleRssBytesPerSessionAtLargest"] = Math.Round(largest.IdleRssPerSession),
                ["lostEvents"] = steps.Sum(s => s.Streaming.Lost),
                ["intact"] = intact,
            });
    }

    private static string IntegrityOf(List<MemoryStep> steps)
    {
        foreach (var step in steps)
        {
            if (!step.Streaming.Intact)
            {
                return Invariant($"{step.Label}: {step.Streaming.Integrity}");
            }
        }

        return "streams: 0 lost";
    }

    private static async Task<MemoryStep> MeasureAsync(BenchEnvironment environment, int requested, int count, Settings settings, CancellationToken cancellationToken)
    {
        var log = environment.Log;
        await WarmUpAsync(environment, settings, cancellationToken);
        await Task.Delay(settings.Settle, cancellationToken);
        var baseline = await MemorySample.TakeAsync(environment.Gateway, cancellationToken);
        log.WriteLine($"# memory/{count}: 0 sessions: {baseline}");

        var socketsBefore = await environment.Upstream.SocketIdsAsync(cancellationToken);
        var connecting = Stopwatch.GetTimestamp();
        var sessions = await environment.ConnectManyAsync(BenchPath.Bridged, count, settings.Concurrency, cancellationToken);
        var connectTime = Stopwatch.GetElapsedTime(connecting);
        try
        {
            log.WriteLine($"# memory/{count}: connected in {connectTime.TotalSeconds:0.0} s");
            await Task.Delay(settings.Settle, cancellationToken);
            var idle = await MemorySample.TakeAsync(environment.Gateway, cancellationToken);
            log.WriteLine($"# memory/{count}: idle: {idle}");

            var (posts, predictions) = await PostsAsync(environment, sessions, socketsBefore, settings, cancellationToken);
            var expected = sessions.ConvertAll(session => new StreamExpectation(session, Question));
            // The requests start fast (≈5000/s): each running stream wakes the Node upstream every 10 ms, and with
            // thousands running it accepts so slowly that connections waiting in its accept queue come back reset
            // (measured: 10 % of 9.8k requests at 1000/s, none at 5000/s). Each stream outlasts the ramp, so all of
            // them run together for StreamSeconds.
            var ramp = TimeSpan.FromSeconds(Math.Max(1, count / 5000.0));
            var plan = new StreamPlan(
                TokensPerStream: (int)Math.Ceiling(settings.Rate * (ramp.TotalSeconds + settings.StreamSeconds)),
                TokensPerSecond: settings.Rate,
                Stagger: ramp,
                DrainTimeout: TimeSpan.FromSeconds(60));
            var cpuBefore = environment.SampleCpu();
            var streaming = StreamRunner.RunAsync(predictions, posts, expected, plan, cancellationToken);

            // Read halfway through the time when every stream runs.
            await Task.WhenAny(streaming, Task.Delay(ramp + TimeSpan.FromSeconds(settings.StreamSeconds / 2), cancellationToken));
            var busy = await MemorySample.TakeAsync(environment.Gateway, cancellationToken);
            var benchFiles = ProcessMetrics.OpenFiles(Environment.ProcessId);
            var upstreamFiles = environment.Upstream.ProcessId is { } upstreamPid ? ProcessMetrics.OpenFiles(upstreamPid) : (int?)null;
            var outcome = await streaming;
            var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
            log.WriteLine($"# memory/{count}: streaming: {busy} (bench: {benchFiles} fds, upstream: {upstreamFiles} fds); {outcome.Integrity} {outcome.FirstPostFailure}");
            return new MemoryStep(requested, count, connectTime, baseline, idle, busy, benchFiles, outcome, cpu);
        }
        finally
        {
            // Killing a gateway the bench started first makes the sessions close at once instead of one handshake at a time.
            if (environment.Gateway.IsOwned)
            {
                await environment.Gateway.DisposeAsync();
            }

            await BenchEnvironment.DisposeAllAsync(sessions);
        }
    }

    private const string Question = "m";

    /// <summary>
    /// Where each stream is requested. Through the gateway is the user's way, but costs two more descriptors per
    /// session there; by default the bench asks the upstream directly for a stream to each of the sockets this
    /// step's sessions added to it (the gateway's upstream sockets), which relays exactly the same events.
    /// </summary>
    private static async Task<(List<StreamPost> Posts, HttpClient Predictions)> PostsAsync(
        BenchEnvironment environment,
        List<BenchSession> sessions,
        IReadOnlySet<string> socketsBefore,
        Settings settings,
        CancellationToken cancellationToken)
    {
        if (settings.PostViaGateway)
        {
            return (sessions.ConvertAll(session => new StreamPost(session.SocketIOClientId, Question)), environment.BridgedPredictions);
        }

        var posts = new List<StreamPost>(sessions.Count);
        foreach (var id in await environment.Upstream.SocketIdsAsync(cancellationToken))
        {
            if (!socketsBefore.Contains(id))
            {
                posts.Add(new StreamPost(id, Question));
            }
        }

        if (posts.Count != sessions.Count)
        {
            throw new InvalidOperationException($"The upstream gained {posts.Count} sockets for {sessions.Count} bridged sessions; is something else connecting to it? (A gateway given with --gateway must run with Gateway:Upstream:WarmSockets=0 here.)");
        }

        return (posts, environment.DirectPredictions);
    }

    /// <summary>
    /// What one Socket.IO client session (built like the gateway's upstream leg) holds in managed memory, measured
    /// in the bench's own process: subtracted from the gateway's per-session heap, it leaves the SignalR side.
    /// </summary>
    private static async Task<(int Sessions, double BytesPerSession)> MeasureDirectAsync(
        BenchEnvironment environment,
        int count,
        Settings settings,
        CancellationToken cancellationToken)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var sessions = await environment.ConnectManyAsync(BenchPath.Direct, count, settings.Concurrency, cancellationToken);
        try
        {
            await Task.Delay(settings.Settle, cancellationToken);
            var perSession = (double)(GC.GetTotalMemory(forceFullCollection: true) - before) / count;
            environment.Log.WriteLine(Invariant($"# memory/direct: {count} Socket.IO sessions hold {Bytes(perSession)} managed each"));
            return (count, perSession);
        }
        finally
        {
            await BenchEnvironment.DisposeAllAsync(sessions);
        }
    }

    /// <summary>A few sessions stream briefly, so the baseline is of a gateway whose code is already compiled.</summary>
    private static async Task WarmUpAsync(BenchEnvironment environment, Settings settings, CancellationToken cancellationToken)
    {
        var socketsBefore = await environment.Upstream.SocketIdsAsync(cancellationToken);
        var sessions = await environment.ConnectManyAsync(BenchPath.Bridged, WarmupSessions, settings.Concurrency, cancellationToken);
        try
        {
            // Requested from the upstream, as the measured streams are by default. Through the gateway, the warm-up
            // would leave pooled REST connections there that close during the measurement (idle timeouts: 2 s in the
            // bench, 5 s at the upstream) and make every session look a descriptor or two cheaper.
            var (posts, predictions) = await PostsAsync(environment, sessions, socketsBefore, settings with { PostViaGateway = false }, cancellationToken);
            var expected = sessions.ConvertAll(session => new StreamExpectation(session, Question));
            var plan = new StreamPlan(TokensPerStream: 200, TokensPerSecond: 400, Stagger: TimeSpan.FromMilliseconds(100), DrainTimeout: TimeSpan.FromSeconds(10));
            var outcome = await StreamRunner.RunAsync(predictions, posts, expected, plan, cancellationToken);
            environment.Log.WriteLine($"# memory warm-up: {outcome.Integrity}");
        }
        finally
        {
            await BenchEnvironment.DisposeAllAsync(sessions);
        }

        // The gateway closes a session's upstream socket only after its client has gone: a baseline read before
        // the warm-up's sockets are closed counts them too.
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 10;
        while ((await environment.Upstream.SocketIdsAsync(cancellationToken)).Count > socketsBefore.Count && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(50, cancellationToken); // another process's state: nothing to wait on but its answer
        }
    }

    private sealed record Settings(double Rate, double StreamSeconds, TimeSpan Settle, int Concurrency, bool PostViaGateway);

    private sealed record MemoryStep(
        int Requested,
        int Sessions,
        TimeSpan ConnectTime,
        MemorySample Baseline,
        MemorySample Idle,
        MemorySample StreamingSample,
        int BenchOpenFilesStreaming,
        StreamOutcome Streaming,
        CpuUse StreamingCpu)
    {
        public string Label => Count(Sessions) + (Sessions < Requested ? "*" : "");

        public double IdleRssPerSession => (double)(Idle.RssBytes - Baseline.RssBytes) / Sessions;

        public double IdleHeapPerSession => PerSession(Idle.LiveHeapBytes, Baseline.LiveHeapBytes);

        public double StreamingRssPerSession => (double)(StreamingSample.RssBytes - Baseline.RssBytes) / Sessions;

        public double StreamingHeapPerSession => PerSession(StreamingSample.LiveHeapBytes, Baseline.LiveHeapBytes);

        private double PerSession(long? at, long? baseline) => at is { } value && baseline is { } zero ? (double)(value - zero) / Sessions : double.NaN;

        public JsonObject ToJson() => new()
        {
            ["requestedSessions"] = Requested,
            ["sessions"] = Sessions,
            ["connectS"] = Math.Round(ConnectTime.TotalSeconds, 2),
            ["baseline"] = Baseline.ToJson(),
            ["idle"] = Idle.ToJson(),
            ["streaming"] = StreamingSample.ToJson(),
            ["benchOpenFilesStreaming"] = BenchOpenFilesStreaming,
            ["idleRssBytesPerSession"] = Math.Round(IdleRssPerSession),
            ["idleHeapBytesPerSession"] = LatencySummary.Round(Math.Round(IdleHeapPerSession)),
            ["streamingRssBytesPerSession"] = Math.Round(StreamingRssPerSession),
            ["streamingHeapBytesPerSession"] = LatencySummary.Round(Math.Round(StreamingHeapPerSession)),
            ["streams"] = Streaming.ToJson(),
            ["streamingCpu"] = StreamingCpu.ToJson(),
        };
    }
}
