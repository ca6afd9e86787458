using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// How many bridged sessions one gateway instance holds by Azure SignalR's criterion: every session receiving
/// 1 event/s, p99 end-to-end latency under 1 s, nothing lost. The sessions grow step by step (kept from one step to
/// the next); the scenario stops at the first step that fails, or where the open-file limit would be passed.
/// </summary>
/// <remarks>
/// Streams are requested straight from the upstream for the gateway's upstream sockets (as the memory scenario
/// does): through the gateway, each running request would cost it two more descriptors and halve the reach.
/// </remarks>
internal static class CapacityScenario
{
    private const double P99LimitMs = 1000;
    private const double TokensPerSecond = 1;
    private const int ReservedFiles = 400;
    private const string Question = "c";
    private static readonly IReadOnlyList<int> DefaultSteps = [500, 1000, 2000, 3000, 4000, 6000, 8000, 10000];

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var stepSizes = options.Steps ?? DefaultSteps;
        var duration = options.Duration ?? 10;
        var concurrency = options.Concurrency ?? 64;

        // The bench, the gateway and the upstream each hold two descriptors per streaming session (a session socket
        // and a request, or a client and an upstream socket), and all three share one limit.
        var fileLimit = ProcessMetrics.OpenFileLimit();
        var maxSessions = (fileLimit - ProcessMetrics.OpenFiles(Environment.ProcessId) - ReservedFiles) / 2;

        var sessions = new List<BenchSession>();
        var steps = new List<CapacityStep>();
        string? stoppedBy = null;
        try
        {
            foreach (var size in stepSizes)
            {
                if (size > maxSessions)
                {
                    stoppedBy = Invariant($"open-file limit {fileLimit}: at most {maxSessions} sessions");
                    break;
                }

                environment.Log.WriteLine($"# capacity/{size}: connecting {size - sessions.Count} more sessions");
                sessions.AddRange(await environment.ConnectManyAsync(BenchPath.Bridged, size - sessions.Count, concurrency, cancellationToken));
                steps.Add(await MeasureAsync(environment, sessions, duration, cancellationToken));
                if (!steps[^1].Held)
                {
                    stoppedBy = Invariant($"the step of {size} failed");
                    break;
                }
            }
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

        var held = steps.LastOrDefault(s => s.Held)?.Sessions ?? 0;
        var last = steps.Count > 0 ? steps[^1] : null;
        return new ScenarioResult(
            "capacity",
            Invariant($"bridged sessions at {TokensPerSecond:0} event/s each, {duration:0.##} s per step, steps {string.Join(" / ", stepSizes)}; a step holds with p99 < {P99LimitMs:0} ms and 0 lost"),
            "n/a (a capacity of the gateway)",
            Invariant($"{string.Join(" · ", steps.ConvertAll(s => $"{s.Sessions}: p99 {Ms(s.Outcome.Latency.P99)} ms, gateway {s.Cpu.Gateway?.TotalSeconds / s.Cpu.Wall.TotalSeconds:0.##} cores{(s.Outcome.Intact ? "" : ", " + s.Outcome.Integrity)}"))}; stopped: {stoppedBy ?? "last step held"}"),
            Invariant($"holds {held} sessions"),
            "holds as many as Azure SignalR's unit (1,000 connections)",
            steps.Count == 0 ? null : held >= 1000,
            new JsonObject
            {
                ["heldSessions"] = held,
                ["stoppedBy"] = stoppedBy,
                ["openFileLimit"] = fileLimit,
                ["maxSessions"] = maxSessions,
                ["p99LimitMs"] = P99LimitMs,
                ["steps"] = new JsonArray([.. steps.ConvertAll(s => (JsonNode)s.ToJson())]),
                ["lostEvents"] = steps.Sum(s => s.Outcome.Lost),
                ["lastStepIntact"] = last?.Outcome.Intact,
            });
    }

    private static async Task<CapacityStep> MeasureAsync(BenchEnvironment environment, List<BenchSession> sessions, double duration, CancellationToken cancellationToken)
    {
        var size = sessions.Count;
        var posts = await GatewaySocketsAsync(environment, size, cancellationToken);
        var ramp = TimeSpan.FromSeconds(Math.Max(1, size / 5000.0)); // request starts spread out, as in the memory scenario
        var plan = new StreamPlan(
            TokensPerStream: (int)Math.Ceiling(TokensPerSecond * (ramp.TotalSeconds + duration)),
            TokensPerSecond: TokensPerSecond,
            Stagger: ramp,
            DrainTimeout: TimeSpan.FromSeconds(60));
        var expected = sessions.ConvertAll(session => new StreamExpectation(session, Question));
        var cpuBefore = environment.SampleCpu();
        var outcome = await StreamRunner.RunAsync(environment.DirectPredictions, [.. posts.Select(id => new StreamPost(id, Question))], expected, plan, cancellationToken);
        var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
        var step = new CapacityStep(size, outcome, cpu, outcome.Intact && outcome.Latency.P99 < P99LimitMs);
        environment.Log.WriteLine($"# capacity/{size}: {step.ToJson().ToJsonString()}");
        return step;
    }

    /// <summary>Every socket the upstream holds is one of the gateway's: the bench connects nothing else to it here.</summary>
    private static async Task<List<string>> GatewaySocketsAsync(BenchEnvironment environment, int expected, CancellationToken cancellationToken)
    {
        var ids = (await environment.Upstream.SocketIdsAsync(cancellationToken)).ToList();
        return ids.Count == expected
            ? ids
            : throw new InvalidOperationException($"The upstream holds {ids.Count} sockets for {expected} bridged sessions; is something else connecting to it? (A gateway given with --gateway must run with Gateway:Upstream:WarmSockets=0 here.)");
    }

    private sealed record CapacityStep(int Sessions, StreamOutcome Outcome, CpuUse Cpu, bool Held)
    {
        public JsonObject ToJson()
        {
            var json = Outcome.ToJson();
            json["sessions"] = Sessions;
            json["held"] = Held;
            json["cpu"] = Cpu.ToJson();
            return json;
        }
    }
}
