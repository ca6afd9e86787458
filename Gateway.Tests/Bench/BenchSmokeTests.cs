using System.Text.Json;
using TromAi.Gateway.Bench;

namespace TromAi.Gateway.Tests.Bench;

/// <summary>
/// Each Gateway.Bench scenario, tiny and short, run exactly as its command line runs it (its own upstream and
/// gateway processes), so the bench cannot rot. These assert what the bench reports and that no event was
/// lost, duplicated or reordered; never how fast anything was: timings belong to the full run by hand.
/// </summary>
public sealed class BenchSmokeTests
{
    private static readonly TimeSpan ScenarioTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Latency_reports_percentiles_on_every_path_and_loses_no_token()
    {
        var result = await RunAsync("latency", "--sessions", "3", "--rate", "50", "--duration", "1", "--warmup", "0.5");

        var nginx = result.GetProperty("nginx");
        var proxied = nginx.TryGetProperty("latencyMs", out _);
        foreach (var path in proxied ? new[] { "direct", "nginx", "bridged" } : ["direct", "bridged"])
        {
            var outcome = result.GetProperty(path);
            AssertIntact(outcome);
            Assert.Equal(3 * 50, outcome.GetProperty("tokensReceived").GetInt32());
            AssertPercentiles(outcome.GetProperty("latencyMs"));
        }

        if (proxied)
        {
            // The yardstick: what nginx's WebSocket proxy adds and costs per event, beside the gateway's figures.
            AssertPercentiles(nginx.GetProperty("addedMs"));
            Assert.Equal(JsonValueKind.Number, nginx.GetProperty("nginxCpuSecondsPerMillionEvents").ValueKind);
        }
        else
        {
            Assert.Equal("nginx not installed", nginx.GetProperty("note").GetString());
        }

        AssertPercentiles(result.GetProperty("addedMs"));
        var cpu = result.GetProperty("bridged").GetProperty("cpu");
        Assert.Equal(JsonValueKind.Number, cpu.GetProperty("gatewayCpuSecondsPerMillionEvents").ValueKind);
        Assert.True(cpu.GetProperty("gatewayMethodsCompiled").GetInt64() >= 0); // how warm the measured window was
        Assert.Equal(0, result.GetProperty("lostEvents").GetInt64());
    }

    [Fact]
    public async Task Bridged_sessions_can_speak_MessagePack_and_negotiate_and_lose_no_token()
    {
        var result = await RunAsync("latency", "--sessions", "2", "--rate", "50", "--duration", "1", "--warmup", "0.5", "--protocol", "messagepack", "--negotiate");

        AssertIntact(result.GetProperty("bridged"));
        Assert.Equal(2 * 50, result.GetProperty("bridged").GetProperty("tokensReceived").GetInt32());
        Assert.Contains("--protocol messagepack --negotiate", result.GetProperty("command").GetString());
    }

    [Fact]
    public async Task Throughput_reports_the_rate_each_path_sustained_and_loses_no_token_at_any_step()
    {
        var result = await RunAsync("throughput", "--sessions", "2", "--rate", "100", "--max-rate", "200", "--duration", "1", "--warmup", "0.5", "--refine", "0");

        var proxied = result.GetProperty("nginx").TryGetProperty("steps", out _);
        foreach (var path in proxied ? new[] { "direct", "nginx", "bridged" } : ["direct", "bridged"])
        {
            var search = result.GetProperty(path);
            Assert.True(search.TryGetProperty("sustainedEventsPerS", out _));
            var steps = search.GetProperty("steps").EnumerateArray().ToList();
            Assert.NotEmpty(steps);
            foreach (var step in steps)
            {
                // A step may fail on p99 on a busy machine; it may never lose, duplicate or reorder.
                AssertIntact(step);
                Assert.Equal(JsonValueKind.Number, step.GetProperty("achievedEventsPerS").ValueKind);
            }
        }

        Assert.True(result.TryGetProperty("ratio", out _));
        if (!proxied)
        {
            Assert.Equal("nginx not installed", result.GetProperty("nginx").GetProperty("note").GetString());
            Assert.Equal(JsonValueKind.Null, result.GetProperty("nginxRatio").ValueKind);
        }
        else if (result.GetProperty("nginx").GetProperty("sustainedEventsPerS").ValueKind == JsonValueKind.Number
            && result.GetProperty("direct").GetProperty("sustainedEventsPerS").ValueKind == JsonValueKind.Number)
        {
            Assert.Equal(JsonValueKind.Number, result.GetProperty("nginxRatio").ValueKind);
        }
        Assert.Equal(0, result.GetProperty("lostEvents").GetInt64());
    }

    [Fact]
    public async Task Memory_reports_rss_and_managed_heap_per_idle_and_streaming_session()
    {
        var result = await RunAsync("memory", "--steps", "2,4", "--duration", "2", "--settle", "0.2");

        var steps = result.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal([2, 4], steps.Select(step => step.GetProperty("sessions").GetInt32()));
        foreach (var step in steps)
        {
            foreach (var field in new[] { "idleRssBytesPerSession", "idleHeapBytesPerSession", "streamingRssBytesPerSession", "streamingHeapBytesPerSession" })
            {
                Assert.Equal(JsonValueKind.Number, step.GetProperty(field).ValueKind);
            }

            // The gateway holds a socket to its client and one to the upstream for every session.
            Assert.True(step.GetProperty("idle").GetProperty("openFiles").GetInt32() - step.GetProperty("baseline").GetProperty("openFiles").GetInt32() >= 2 * step.GetProperty("sessions").GetInt32());
            AssertIntact(step.GetProperty("streams"));
        }

        Assert.Equal(0, result.GetProperty("lostEvents").GetInt64());
    }

    [Fact]
    public async Task Connect_reports_connect_to_ready_on_both_paths_after_its_warm_up_and_every_connect_succeeds()
    {
        var result = await RunAsync("connect", "--rate", "20", "--duration", "1", "--warmup", "0.5");

        foreach (var path in new[] { "direct", "bridged" })
        {
            Assert.Equal(0, result.GetProperty(path).GetProperty("failures").GetInt32());
            var connect = result.GetProperty(path).GetProperty("connectMs");
            Assert.Equal(20, connect.GetProperty("samples").GetInt32());
            Assert.Equal(JsonValueKind.Number, connect.GetProperty("p99").ValueKind);
            Assert.Equal(10, result.GetProperty(path).GetProperty("warmupConnectMs").GetProperty("samples").GetInt32());
        }
    }

    [Fact]
    public async Task Rest_reports_the_round_trip_ratio_and_every_answer_is_right()
    {
        var result = await RunAsync("rest", "--requests", "40");

        Assert.Equal(0, result.GetProperty("failures").GetInt32());
        Assert.Equal(40, result.GetProperty("direct").GetProperty("samples").GetInt32());
        Assert.Equal(40, result.GetProperty("bridged").GetProperty("samples").GetInt32());
        Assert.Equal(JsonValueKind.Number, result.GetProperty("p50Ratio").ValueKind);
        var nginx = result.GetProperty("nginx");
        if (nginx.TryGetProperty("latency", out var proxied))
        {
            Assert.Equal(40, proxied.GetProperty("samples").GetInt32());
            Assert.Equal(JsonValueKind.Number, nginx.GetProperty("addedP50Ms").ValueKind);
        }
        else
        {
            Assert.Equal("nginx not installed", nginx.GetProperty("note").GetString());
        }
    }

    [Fact]
    public async Task Rest_without_nginx_says_so_and_still_compares_direct_and_bridged()
    {
        var result = await RunAsync("rest", "--requests", "20", "--nginx", "none");

        Assert.Equal(0, result.GetProperty("failures").GetInt32());
        Assert.Equal(20, result.GetProperty("bridged").GetProperty("samples").GetInt32());
        Assert.False(result.GetProperty("nginx").GetProperty("installed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, result.GetProperty("targetMet").ValueKind); // not judged without the yardstick
    }

    [Fact]
    public async Task Reader_reports_allocations_and_cpu_per_event_of_both_upstream_readers_and_loses_no_event()
    {
        var result = await RunAsync("reader", "--sessions", "2", "--rate", "50", "--duration", "1", "--warmup", "0");

        foreach (var reader in new[] { "socketIOClient", "socketIOConnection", "socketIOConnectionHeldBuffer" })
        {
            var outcome = result.GetProperty(reader);
            Assert.Equal(2 * 2 * (50 + 2), outcome.GetProperty("events").GetInt64()); // two runs of two streams: start, 50 tokens, end
            Assert.Equal(0, outcome.GetProperty("lost").GetInt64());
            Assert.Equal(JsonValueKind.Number, outcome.GetProperty("allocatedBytesPerEvent").ValueKind);
            Assert.Equal(JsonValueKind.Number, outcome.GetProperty("cpuSecondsPerMillionEvents").ValueKind);
        }
    }

    [Fact]
    public async Task Capacity_steps_up_bridged_sessions_at_one_event_per_second_and_loses_none()
    {
        var result = await RunAsync("capacity", "--steps", "3,6", "--duration", "1");

        var steps = result.GetProperty("steps").EnumerateArray().ToList();
        Assert.NotEmpty(steps);
        Assert.Equal(3, steps[0].GetProperty("sessions").GetInt32());
        foreach (var step in steps)
        {
            // A step may fail on p99 on a busy machine (and end the search); it may never lose, duplicate or reorder.
            AssertIntact(step);
            Assert.Equal(JsonValueKind.Number, step.GetProperty("latencyMs").GetProperty("p99").ValueKind);
        }

        Assert.Equal(JsonValueKind.Number, result.GetProperty("heldSessions").ValueKind);
        Assert.Equal(0, result.GetProperty("lostEvents").GetInt64());
    }

    /// <summary>Runs the bench; checks it printed its table row and one JSON line for the scenario; returns that JSON.</summary>
    private static async Task<JsonElement> RunAsync(string scenario, params string[] options)
    {
        using var output = new StringWriter();
        using var log = new StringWriter();
        using var timeout = new CancellationTokenSource(ScenarioTimeout);
        // Off xunit's synchronization context: the bench's continuations must not queue behind other tests.
        var exitCode = await Task.Run(() => Benchmark.RunAsync([scenario, .. options], output, log, timeout.Token));
        Assert.True(exitCode == 0, $"The bench exited with {exitCode}:{Environment.NewLine}{log}");

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var row = Assert.Single(lines, line => line.StartsWith($"| {scenario} |", StringComparison.Ordinal));
        Assert.Equal(8, row.Count(c => c == '|')); // scenario, setup, direct, bridged, comparison, target, verdict
        Assert.Contains(lines, line => line.StartsWith("| scenario |", StringComparison.Ordinal));

        var json = JsonDocument.Parse(Assert.Single(lines, line => line.StartsWith('{'))).RootElement.Clone();
        Assert.Equal(scenario, json.GetProperty("scenario").GetString());
        foreach (var field in new[] { "date", "machine", "command", "target", "targetMet" })
        {
            Assert.True(json.TryGetProperty(field, out _), $"The JSON line has no '{field}': {json}");
        }

        Assert.Contains($"-- {scenario} ", json.GetProperty("command").GetString());
        return json;
    }

    private static void AssertPercentiles(JsonElement latency)
    {
        Assert.True(latency.GetProperty("samples").GetInt32() > 0);
        foreach (var percentile in new[] { "p50", "p90", "p99", "max" })
        {
            Assert.Equal(JsonValueKind.Number, latency.GetProperty(percentile).ValueKind);
        }
    }

    private static void AssertIntact(JsonElement outcome)
    {
        foreach (var count in new[] { "lost", "duplicated", "reordered", "foreign", "unfinished", "failedPosts" })
        {
            Assert.True(outcome.GetProperty(count).GetInt64() == 0, $"{count} is not 0: {outcome}");
        }
    }
}
