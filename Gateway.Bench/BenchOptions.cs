using System.Globalization;
using TromAi.Gateway.Bench.Clients;

namespace TromAi.Gateway.Bench;

/// <summary>The command line: <c>&lt;scenario&gt; [--option value]...</c>. Options a scenario does not use are ignored by it.</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        usage: Gateway.Bench <scenario> [options]
          scenarios: latency | throughput | memory | connect | rest | reader | capacity | all
                     (all: each with its defaults; only --protocol, --negotiate, --upstream, --gateway, --gateway-pid,
                     --gateway-env, --json apply)
          --sessions N        sessions per path (latency 200, throughput 100, reader 100)
          --rate X            latency: tokens/s per session (50); throughput: first aggregate events/s (5000); reader: tokens/s per session (100);
                              connect: connects/s (50); memory: tokens/s per session while streaming (1)
          --duration S        measured seconds (latency 20, throughput 5 per step, connect 10, memory 15 streaming, reader 10 per run,
                              capacity 10 per step)
          --warmup S          seconds of streaming on each path before measuring (latency 15, throughput 15, reader 3);
                      connect: seconds of untimed connects at the rate first (15)
          --max-rate X        throughput: stop raising at this aggregate events/s (1000000)
          --p99-limit MS      throughput: a step fails when p99 passes this (100)
          --refine N          throughput: bisection steps after the first failing rate (2)
          --steps A,B,C       memory: idle bridged sessions to hold (1000,5000,10000); capped by the fd limit;
                              capacity: bridged sessions at 1 event/s each (500,1000,2000,3000,4000,6000,8000,10000)
          --settle S          memory: seconds to let the gateway settle before each reading (3)
          --post-via P        memory: where streams are requested, upstream (default) or gateway
          --requests N        rest: requests per path (5000, after 2000 warm-up)
          --concurrency N     rest: requests in flight per path (1); memory: connects in flight (64)
          --nginx PATH|none   rest, latency, throughput: the nginx to put beside the gateway (found on the usual paths); none leaves it out
          --protocol P        bridged sessions' hub protocol: json (default) or messagepack
          --negotiate         bridged sessions negotiate first, as WithUrl does by default (they skip it
                              otherwise: one WebSocket request, like the direct path)
          --upstream URL      use a running test upstream instead of starting one
          --gateway URL       use a running gateway (pointed at the same upstream) instead of starting one
          --gateway-pid PID   with --gateway: read its RSS and CPU time from /proc
          --gateway-env N=V   environment variable for a gateway the bench starts (repeatable), e.g.
                              DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 or Gateway__Relay__MaxBacklog=5000
          --json              print only the JSON line
        """;

    public required string Scenario { get; init; }

    public int? Sessions { get; init; }

    public double? Rate { get; init; }

    public double? Duration { get; init; }

    public double? Warmup { get; init; }

    public double MaxRate { get; init; } = 1_000_000;

    public double P99LimitMs { get; init; } = 100;

    public int Refine { get; init; } = 2;

    /// <summary>Null: the scenario's own (memory 1000, 5000, 10000; capacity see <see cref="Scenarios.CapacityScenario"/>).</summary>
    public IReadOnlyList<int>? Steps { get; init; }

    public double Settle { get; init; } = 3;

    public bool PostViaGateway { get; init; }

    public BridgedClient Client { get; init; } = new();

    public int Requests { get; init; } = 5000;

    public int? Concurrency { get; init; }

    /// <summary>Null: look for nginx where Debian installs it; "none": as if it were not installed.</summary>
    public string? Nginx { get; init; }

    public Uri? Upstream { get; init; }

    public Uri? Gateway { get; init; }

    public int? GatewayPid { get; init; }

    public IReadOnlyDictionary<string, string> GatewayEnvironment { get; init; } = new Dictionary<string, string>();

    public bool JsonOnly { get; init; }

    /// <summary>The arguments as given, for the command that reproduces a row.</summary>
    public required IReadOnlyList<string> Arguments { get; init; }

    public static readonly IReadOnlyList<string> Scenarios = ["latency", "throughput", "memory", "connect", "rest", "reader", "capacity"];

    /// <exception cref="FormatException">With a message for the user.</exception>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0].StartsWith('-'))
        {
            throw new FormatException("Name a scenario.");
        }

        var scenario = args[0];
        if (scenario != "all" && !Scenarios.Contains(scenario))
        {
            throw new FormatException($"Unknown scenario '{scenario}'.");
        }

        var options = new BenchOptions { Scenario = scenario, Arguments = args.ToArray() };
        for (var i = 1; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => ++i < args.Count ? args[i] : throw new FormatException($"{name} needs a value.");
            options = name switch
            {
                "--sessions" => options with { Sessions = PositiveInt(name, Value()) },
                "--rate" => options with { Rate = PositiveNumber(name, Value()) },
                "--duration" => options with { Duration = PositiveNumber(name, Value()) },
                "--warmup" => options with { Warmup = Number(name, Value()) },
                "--max-rate" => options with { MaxRate = PositiveNumber(name, Value()) },
                "--p99-limit" => options with { P99LimitMs = PositiveNumber(name, Value()) },
                "--refine" => options with { Refine = (int)Number(name, Value()) },
                "--steps" => options with { Steps = Array.ConvertAll(Value().Split(','), step => PositiveInt(name, step)) },
                "--settle" => options with { Settle = Number(name, Value()) },
                "--post-via" => options with
                {
                    PostViaGateway = Value() switch
                    {
                        "gateway" => true,
                        "upstream" => false,
                        var other => throw new FormatException($"--post-via is upstream or gateway, not '{other}'."),
                    },
                },
                "--requests" => options with { Requests = PositiveInt(name, Value()) },
                "--concurrency" => options with { Concurrency = PositiveInt(name, Value()) },
                "--nginx" => options with { Nginx = Value() },
                "--protocol" => options with
                {
                    Client = options.Client with
                    {
                        Protocol = Value() is var protocol && BridgedClient.Protocols.Contains(protocol)
                            ? protocol
                            : throw new FormatException($"--protocol is {string.Join(" or ", BridgedClient.Protocols)}, not '{protocol}'."),
                    },
                },
                "--negotiate" => options with { Client = options.Client with { Negotiate = true } },
                "--upstream" => options with { Upstream = Url(name, Value()) },
                "--gateway" => options with { Gateway = Url(name, Value()) },
                "--gateway-pid" => options with { GatewayPid = PositiveInt(name, Value()) },
                "--gateway-env" => options with { GatewayEnvironment = With(options.GatewayEnvironment, name, Value()) },
                "--json" => options with { JsonOnly = true },
                _ => throw new FormatException($"Unknown option '{name}'."),
            };
        }

        return options;
    }

    /// <summary>
    /// One scenario of an <c>all</c> run: its defaults, plus the options every scenario shares (where the
    /// upstream and gateway are, JSON only). A scenario-specific option such as --rate means different things
    /// to different scenarios, so <c>all</c> does not pass those on.
    /// </summary>
    public BenchOptions For(string scenario)
    {
        List<string> shared = [scenario];
        if (Upstream is not null)
        {
            shared.AddRange(["--upstream", Upstream.ToString()]);
        }

        if (Gateway is not null)
        {
            shared.AddRange(["--gateway", Gateway.ToString()]);
        }

        if (GatewayPid is { } pid)
        {
            shared.AddRange(["--gateway-pid", pid.ToString(CultureInfo.InvariantCulture)]);
        }

        foreach (var (variable, value) in GatewayEnvironment)
        {
            shared.AddRange(["--gateway-env", $"{variable}={value}"]);
        }

        if (Client.Protocol != BridgedClient.Json)
        {
            shared.AddRange(["--protocol", Client.Protocol]);
        }

        if (Client.Negotiate)
        {
            shared.Add("--negotiate");
        }

        if (JsonOnly)
        {
            shared.Add("--json");
        }

        return Parse(shared);
    }

    /// <summary>The command that reproduces this scenario's row.</summary>
    public string Command => "dotnet run -c Release --project Gateway.Bench -- " + string.Join(' ', Arguments);

    private static double Number(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && number >= 0
            ? number
            : throw new FormatException($"{name} takes a number ≥ 0, not '{value}'.");

    private static double PositiveNumber(string name, string value) =>
        Number(name, value) is > 0 and var number ? number : throw new FormatException($"{name} takes a number > 0, not '{value}'.");

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0
            ? number
            : throw new FormatException($"{name} takes a whole number > 0, not '{value}'.");

    private static Dictionary<string, string> With(IReadOnlyDictionary<string, string> variables, string name, string assignment)
    {
        var equals = assignment.IndexOf('=');
        if (equals <= 0)
        {
            throw new FormatException($"{name} takes NAME=VALUE, not '{assignment}'.");
        }

        return new Dictionary<string, string>(variables) { [assignment[..equals]] = assignment[(equals + 1)..] };
    }

    private static Uri Url(string name, string value) =>
        Uri.TryCreate(value.EndsWith('/') ? value : value + "/", UriKind.Absolute, out var url) && url.Scheme is "http" or "https"
            ? url
            : throw new FormatException($"{name} takes an http(s) URL, not '{value}'.");
}
