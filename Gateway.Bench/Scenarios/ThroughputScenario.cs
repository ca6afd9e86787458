using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// Raises the aggregate token rate over a fixed set of sessions, doubling, until a step fails, then bisects
/// between the last rate that held and the first that did not. A step holds when every event arrived once and
/// in order, p99 stayed under the limit, and the streams finished on schedule (a producer or relay that falls
/// behind shows up there, since each token's stamp is taken when it is actually emitted). When nginx is installed,
/// the direct path's client is searched through nginx's WebSocket proxy too: what a plain relay in C sustains on the
/// same machine is the yardstick for the bridged/direct ratio.
/// </summary>
internal static class ThroughputScenario
{
    private const double RatioTarget = 0.95; // issue 12

    // Streams may finish this much later than their schedule and still hold: 2 %, at least 100 ms for the
    // requests' own round trips. More would let a path that falls behind pass as one that kept up.
    private const double ScheduleSlack = 0.02;
    private static readonly TimeSpan MinimumScheduleSlack = TimeSpan.FromMilliseconds(100);

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var settings = new Settings(
            Sessions: options.Sessions ?? 100,
            FirstRate: options.Rate ?? 5000,
            MaxRate: options.MaxRate,
            StepSeconds: options.Duration ?? 5,
            WarmupSeconds: options.Warmup, // null: until the JIT has settled
            P99LimitMs: options.P99LimitMs,
            Refinements: options.Refine);

        var direct = await SearchAsync(environment, BenchPath.Direct, settings, cancellationToken);
        var nginx = await environment.StartNginxAsync(cancellationToken) is null ? null : await SearchAsync(environment, BenchPath.Nginx, settings, cancellationToken);
        var bridged = await SearchAsync(environment, BenchPath.Bridged, settings, cancellationToken);

        var ratio = RatioOf(bridged, direct);
        var nginxRatio = nginx is null ? double.NaN : RatioOf(nginx, direct);
        var intact = direct.IntactBelowLimit && bridged.IntactBelowLimit && (nginx?.IntactBelowLimit ?? true);
        var nginxCell = nginx is null
            ? "; nginx not installed"
            : Invariant($"; through nginx (one worker): {(nginx.Best is { } held ? Count(held.AchievedRate) : "no rate held")} events/s, nginx/direct {Ratio(nginxRatio)}");
        return new ScenarioResult(
            "throughput",
            Invariant($"{settings.Sessions} sessions per path, warmed up {direct.WarmupSeconds:0.#} s · {bridged.WarmupSeconds:0.#} s; {settings.StepSeconds:0.##} s steps ×2 from {Count(settings.FirstRate)} events/s, then {settings.Refinements} bisections; a step holds with 0 lost/dup/reordered, p99 ≤ {settings.P99LimitMs:0} ms, streams done within {ScheduleSlack:0%} of schedule"),
            direct.Describe(),
            bridged.Describe(),
            Invariant($"ratio {Ratio(ratio)}{nginxCell}"),
            Invariant($"bridged/direct ≥ {RatioTarget:0.0#}"),
            double.IsNaN(ratio) ? null : intact && ratio >= RatioTarget,
            new JsonObject
            {
                ["sessions"] = settings.Sessions,
                ["stepS"] = settings.StepSeconds,
                ["p99LimitMs"] = settings.P99LimitMs,
                ["direct"] = direct.ToJson(),
                ["bridged"] = bridged.ToJson(),
                ["nginx"] = nginx is null ? new JsonObject { ["installed"] = false, ["note"] = "nginx not installed" } : nginx.ToJson(),
                ["ratio"] = LatencySummary.Round(ratio),
                ["nginxRatio"] = nginx is null ? null : LatencySummary.Round(nginxRatio),
                ["lostEvents"] = direct.LostBelowLimit + bridged.LostBelowLimit + (nginx?.LostBelowLimit ?? 0),
                ["intact"] = intact,
            });
    }

    private static double RatioOf(Search path, Search direct) =>
        direct.Best is null || path.Best is null ? double.NaN : path.Best.AchievedRate / direct.Best.AchievedRate;

    private static async Task<Search> SearchAsync(BenchEnvironment environment, BenchPath path, Settings settings, CancellationToken cancellationToken)
    {
        var search = new Search(path);
        environment.Log.WriteLine($"# throughput/{path}: connecting {settings.Sessions} sessions");
        var sessions = await environment.ConnectManyAsync(path, settings.Sessions, concurrency: 32, cancellationToken);
        try
        {
            search.WarmupSeconds = await MeasuredStreams.WarmUpAsync(environment, path, sessions, Plan(settings, settings.FirstRate), settings.WarmupSeconds, cancellationToken);
            for (var rate = settings.FirstRate; rate <= settings.MaxRate && search.FirstFailure is null; rate *= 2)
            {
                sessions = await RunStepAsync(environment, path, sessions, settings, rate, search, cancellationToken);
            }

            for (var i = 0; i < settings.Refinements && search.Best is { } held && search.FirstFailure is { } failed; i++)
            {
                sessions = await RunStepAsync(environment, path, sessions, settings, (held.Rate + failed.Rate) / 2, search, cancellationToken);
            }
        }
        finally
        {
            await BenchEnvironment.DisposeAllAsync(sessions);
        }

        return search;
    }

    /// <returns>The sessions for the next step: the same ones, or new ones if the step closed any (a gateway cuts off a client that falls too far behind).</returns>
    private static async Task<List<BenchSession>> RunStepAsync(
        BenchEnvironment environment,
        BenchPath path,
        List<BenchSession> sessions,
        Settings settings,
        double rate,
        Search search,
        CancellationToken cancellationToken)
    {
        var plan = Plan(settings, rate);
        var measured = await MeasuredStreams.RunAsync(environment, path, sessions, plan, cancellationToken);
        var scheduled = TimeSpan.FromSeconds(plan.TokensPerStream / plan.TokensPerSecond) + plan.Stagger;
        var onSchedule = measured.Outcome.Elapsed <= scheduled + Max(scheduled * ScheduleSlack, MinimumScheduleSlack);
        var step = new Step(rate, measured, onSchedule, measured.Outcome.Intact && onSchedule && measured.Outcome.Latency.P99 <= settings.P99LimitMs);
        search.Add(step);
        environment.Log.WriteLine($"# throughput/{path}: {Count(rate)} events/s {(step.Held ? "held" : "failed")}: {step.ToJson().ToJsonString()}");

        foreach (var session in sessions)
        {
            if (session.ClosedReason is not null)
            {
                environment.Log.WriteLine($"# throughput/{path}: a session closed ({session.ClosedReason}); reconnecting all");
                await BenchEnvironment.DisposeAllAsync(sessions);
                return await environment.ConnectManyAsync(path, settings.Sessions, concurrency: 32, cancellationToken);
            }
        }

        return sessions;
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static StreamPlan Plan(Settings settings, double aggregateRate)
    {
        var perSession = aggregateRate / settings.Sessions;
        return new StreamPlan(
            TokensPerStream: Math.Max(1, (int)Math.Ceiling(perSession * settings.StepSeconds)),
            TokensPerSecond: perSession,
            Stagger: TimeSpan.FromSeconds(Math.Min(0.1, 1 / perSession)),
            DrainTimeout: TimeSpan.FromSeconds(Math.Max(10, 2 * settings.StepSeconds)));
    }

    private sealed record Settings(int Sessions, double FirstRate, double MaxRate, double StepSeconds, double? WarmupSeconds, double P99LimitMs, int Refinements);

    private sealed record Step(double Rate, MeasuredStreams Measured, bool OnSchedule, bool Held)
    {
        public double AchievedRate => Measured.Outcome.TokensReceived / Measured.Outcome.Elapsed.TotalSeconds;

        public JsonObject ToJson()
        {
            var json = Measured.ToJson();
            json["offeredEventsPerS"] = Math.Round(Rate);
            json["achievedEventsPerS"] = Math.Round(AchievedRate);
            json["onSchedule"] = OnSchedule;
            json["held"] = Held;
            return json;
        }
    }

    private sealed class Search(BenchPath path)
    {
        private readonly List<Step> _steps = [];

        /// <summary>The seconds of unmeasured streaming before the first step.</summary>
        public double WarmupSeconds { get; set; }

        /// <summary>The highest rate that held.</summary>
        public Step? Best { get; private set; }

        /// <summary>The lowest rate that failed.</summary>
        public Step? FirstFailure { get; private set; }

        /// <summary>Events lost, duplicated or reordered at any rate up to the sustained one: must be 0.</summary>
        public long LostBelowLimit
        {
            get
            {
                long count = 0;
                foreach (var step in _steps)
                {
                    if (step.Rate <= (Best?.Rate ?? 0))
                    {
                        var outcome = step.Measured.Outcome;
                        count += outcome.Lost + outcome.Duplicated + outcome.Reordered + outcome.Foreign;
                    }
                }

                return count;
            }
        }

        public bool IntactBelowLimit
        {
            get
            {
                foreach (var step in _steps)
                {
                    if (step.Rate <= (Best?.Rate ?? 0) && !step.Measured.Outcome.Intact)
                    {
                        return false;
                    }
                }

                return true;
            }
        }

        public void Add(Step step)
        {
            _steps.Add(step);
            if (step.Held)
            {
                Best = Best is null || step.Rate > Best.Rate ? step : Best;
            }
            else
            {
                FirstFailure = FirstFailure is null || step.Rate < FirstFailure.Rate ? step : FirstFailure;
            }
        }

        public string Describe()
        {
            var text = Best is { } best
                ? Invariant($"{Count(best.AchievedRate)} events/s sustained at {Count(best.Rate)} offered (p99 {Ms(best.Measured.Outcome.Latency.P99)} ms; {best.Measured.Cpu.Summary}; gateway {Ms(best.Measured.GatewayCpuSecondsPerMillionEvents)} CPU-s/M events)")
                : "no rate held";
            if (FirstFailure is { } failed)
            {
                text += Invariant($"; {Count(failed.Rate)} failed: {Reason(failed)}");
            }

            return text;
        }

        private static string Reason(Step step)
        {
            var outcome = step.Measured.Outcome;
            List<string> reasons = [];
            if (!outcome.Intact)
            {
                reasons.Add(outcome.Integrity);
            }

            if (!step.OnSchedule)
            {
                reasons.Add(Invariant($"{Count(step.AchievedRate)}/s achieved"));
            }

            reasons.Add(Invariant($"p99 {Ms(outcome.Latency.P99)} ms"));
            return string.Join(", ", reasons);
        }

        public JsonObject ToJson()
        {
            var steps = new JsonArray();
            foreach (var step in _steps)
            {
                steps.Add(step.ToJson());
            }

            return new JsonObject
            {
                ["path"] = path.ToString(),
                ["warmupS"] = WarmupSeconds,
                ["sustainedEventsPerS"] = Best is null ? null : Math.Round(Best.AchievedRate),
                ["sustainedOfferedEventsPerS"] = Best is null ? null : Math.Round(Best.Rate),
                ["firstFailingEventsPerS"] = FirstFailure is null ? null : Math.Round(FirstFailure.Rate),
                ["lostDuplicatedOrReorderedBelowLimit"] = LostBelowLimit,
                ["steps"] = steps,
            };
        }
    }
}
