using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>The gateway's own instruments as an operator reads them at <c>/metrics</c>, and their cost on the relay's hot path.</summary>
[Collection(TelemetryTests.Collection)]
public sealed class GatewayMetricsTests(TelemetryTests.UpstreamFixture fixture) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    private GatewayMetrics Metrics => _gateway.Services.GetRequiredService<GatewayMetrics>();

    public async Task InitializeAsync() => _gateway = await fixture.StartGatewayAsync();

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task Upstream_sessions_are_counted_in_the_state_they_are_in()
    {
        Metrics.UpstreamStateChanged(null, UpstreamState.Connecting);
        Metrics.UpstreamStateChanged(UpstreamState.Connecting, UpstreamState.Connected);
        Metrics.UpstreamStateChanged(null, UpstreamState.Connecting);
        Metrics.UpstreamStateChanged(UpstreamState.Connecting, UpstreamState.Connected);
        Metrics.UpstreamStateChanged(UpstreamState.Connected, UpstreamState.Reconnecting);
        var oneLost = await PrometheusScrape.GetAsync(_gateway.Http);
        Metrics.UpstreamStateChanged(UpstreamState.Reconnecting, UpstreamState.Connected);
        Metrics.UpstreamStateChanged(UpstreamState.Connected, null);
        Metrics.UpstreamStateChanged(UpstreamState.Connected, null);
        var allClosed = await PrometheusScrape.GetAsync(_gateway.Http);

        Assert.Equal(1, oneLost["tromai_gateway_upstream_sessions{state=\"connected\"}"]);
        Assert.Equal(1, oneLost["tromai_gateway_upstream_sessions{state=\"reconnecting\"}"]);
        Assert.Equal(0, oneLost["tromai_gateway_upstream_sessions{state=\"connecting\"}"]);
        Assert.Equal(0, allClosed["tromai_gateway_upstream_sessions{state=\"connected\"}"]);
        Assert.Equal(0, allClosed["tromai_gateway_upstream_sessions{state=\"reconnecting\"}"]);
    }

    [Fact]
    public async Task Every_event_name_of_the_protocol_keeps_its_own_series_and_others_share_one()
    {
        string[] known = ["start", "token", "end", "sourceDocuments", "tool", "usedTools", "calledTools", "fileAnnotations", "agentReasoning",
            "nextAgent", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "abort", "action", "thinking", "artifacts", "metadata",
            "usageMetadata", "error", "tts_start", "tts_data", "tts_end", "tts_abort",
            "gateway:upstream-lost", "gateway:upstream-restored", "gateway:draining"];

        foreach (var name in known)
        {
            Metrics.EventRelayed(name, 1);
        }

        for (var i = 0; i < 50; i++)
        {
            Metrics.EventRelayed($"invented{i}", 1);
        }

        var scrape = await PrometheusScrape.GetAsync(_gateway.Http);
        Assert.All(known, name => Assert.Equal(1, scrape[$"tromai_gateway_events_relayed_total{{event=\"{name}\"}}"]));
        Assert.Equal(50, scrape["tromai_gateway_events_relayed_total{event=\"other\"}"]);
        Assert.DoesNotContain("invented", scrape.Text);
    }

    [Fact]
    public async Task Rewrites_and_rejects_outside_the_documented_values_count_as_other()
    {
        Metrics.Rewrite(GatewayMetrics.RewriteOutcome.Streamed);
        Metrics.Rewrite("something else");
        Metrics.Rejected(GatewayMetrics.RejectReason.Backlog);
        Metrics.Rejected("Backlog"); // not the constant's spelling

        var scrape = await PrometheusScrape.GetAsync(_gateway.Http);

        Assert.Equal(1, scrape["tromai_gateway_rewrites_total{outcome=\"streamed\"}"]);
        Assert.Equal(1, scrape["tromai_gateway_rewrites_total{outcome=\"other\"}"]);
        Assert.Equal(1, scrape["tromai_gateway_rejects_total{reason=\"backlog\"}"]);
        Assert.Equal(1, scrape["tromai_gateway_rejects_total{reason=\"other\"}"]);
        Assert.DoesNotContain("something else", scrape.Text);
    }

    [Fact]
    public async Task Relay_latency_is_a_histogram_in_milliseconds_with_the_gateway_s_buckets()
    {
        Metrics.EventRelayed("token", 0.3);
        Metrics.EventRelayed("token", 0.4);
        Metrics.EventRelayed("token", 40);

        var scrape = await PrometheusScrape.GetAsync(_gateway.Http);

        Assert.Equal("histogram", scrape.Types["tromai_gateway_relay_latency_milliseconds"]);
        Assert.Equal(0, scrape["tromai_gateway_relay_latency_milliseconds_bucket{le=\"0.25\"}"]);
        Assert.Equal(2, scrape["tromai_gateway_relay_latency_milliseconds_bucket{le=\"0.5\"}"]);
        Assert.Equal(3, scrape["tromai_gateway_relay_latency_milliseconds_bucket{le=\"50\"}"]);
        Assert.Equal(3, scrape["tromai_gateway_relay_latency_milliseconds_count"]);
    }

    [Fact]
    public async Task Hot_path_calls_allocate_nothing_while_OpenTelemetry_listens()
    {
        // Not the interned literal: the Socket.IO client hands over a string of its own for every event.
        var token = new string("token".AsSpan());
        var unknown = new string("unheardOf".AsSpan());
        var metrics = Metrics;
        for (var i = 0; i < 100; i++)
        {
            Relay(metrics, token, unknown); // a tag set's first measurement creates its series
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            Relay(metrics, token, unknown);
        }

        // Nothing per call: one object per call would be 240 kB here, one byte per call 10 kB. The runtime
        // may allocate a few kB once, when tiered compilation swaps in optimised code mid-loop (3.2 kB seen
        // on a loaded machine).
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 8 * 1024);
        Assert.Equal(10_100, (await PrometheusScrape.GetAsync(_gateway.Http))["tromai_gateway_events_relayed_total{event=\"token\"}"]);
    }

    private static void Relay(GatewayMetrics metrics, string token, string unknown)
    {
        metrics.Enqueued();
        metrics.Dequeued();
        metrics.EventRelayed(token, 0.3);
        metrics.EventRelayed(unknown, 12);
        metrics.UpstreamStateChanged(UpstreamState.Connected, UpstreamState.Reconnecting);
        metrics.UpstreamStateChanged(UpstreamState.Reconnecting, UpstreamState.Connected);
        metrics.SessionStarted();
        metrics.SessionEnded();
        metrics.Rewrite(GatewayMetrics.RewriteOutcome.Rewritten);
        metrics.Rejected(GatewayMetrics.RejectReason.RequestRate);
    }
}
