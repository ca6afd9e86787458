using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>The gateway's own instruments as an operator reads them, and their cost on the relay's hot path.</summary>
[Collection(TelemetryTests.Collection)]
public sealed class GatewayMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MetricsCollector _collector;
    private readonly GatewayMetrics _metrics;

    public GatewayMetricsTests()
    {
        var factory = _services.GetRequiredService<IMeterFactory>();
        _collector = new MetricsCollector([GatewayMetrics.MeterName], factory, NullLogger<MetricsCollector>.Instance);
        _metrics = new GatewayMetrics(factory);
    }

    public void Dispose()
    {
        _collector.Dispose();
        _services.Dispose();
    }

    [Fact]
    public void Upstream_sessions_are_counted_in_the_state_they_are_in()
    {
        _metrics.UpstreamStateChanged(null, UpstreamState.Connecting);
        _metrics.UpstreamStateChanged(UpstreamState.Connecting, UpstreamState.Connected);
        _metrics.UpstreamStateChanged(null, UpstreamState.Connecting);
        _metrics.UpstreamStateChanged(UpstreamState.Connecting, UpstreamState.Connected);
        _metrics.UpstreamStateChanged(UpstreamState.Connected, UpstreamState.Reconnecting);
        var oneLost = _collector.Scrape();
        _metrics.UpstreamStateChanged(UpstreamState.Reconnecting, UpstreamState.Connected);
        _metrics.UpstreamStateChanged(UpstreamState.Connected, null);
        _metrics.UpstreamStateChanged(UpstreamState.Connected, null);
        var allClosed = _collector.Scrape();

        Assert.Contains("tromai_gateway_upstream_sessions{state=\"connected\"} 1\n", oneLost);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"reconnecting\"} 1\n", oneLost);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"connecting\"} 0\n", oneLost);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"connected\"} 0\n", allClosed);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"reconnecting\"} 0\n", allClosed);
    }

    [Fact]
    public void Every_event_name_of_the_protocol_keeps_its_own_series_and_others_share_one()
    {
        string[] known = ["start", "token", "end", "sourceDocuments", "tool", "usedTools", "calledTools", "fileAnnotations", "agentReasoning",
            "nextAgent", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "abort", "action", "thinking", "artifacts", "metadata",
            "usageMetadata", "error", "tts_start", "tts_data", "tts_end", "tts_abort",
            "gateway:upstream-lost", "gateway:upstream-restored", "gateway:draining"];

        foreach (var name in known)
        {
            _metrics.EventRelayed(name, 1);
        }

        for (var i = 0; i < 50; i++)
        {
            _metrics.EventRelayed($"invented{i}", 1);
        }

        var text = _collector.Scrape();
        Assert.All(known, name => Assert.Contains($"tromai_gateway_events_relayed_total{{event=\"{name}\"}} 1\n", text));
        Assert.Contains("tromai_gateway_events_relayed_total{event=\"other\"} 50\n", text);
        Assert.DoesNotContain("invented", text);
    }

    [Fact]
    public void Rewrites_and_rejects_outside_the_documented_values_count_as_other()
    {
        _metrics.Rewrite(GatewayMetrics.RewriteOutcome.Streamed);
        _metrics.Rewrite("something else");
        _metrics.Rejected(GatewayMetrics.RejectReason.Backlog);
        _metrics.Rejected("Backlog"); // not the constant's spelling

        var text = _collector.Scrape();

        Assert.Contains("tromai_gateway_rewrites_total{outcome=\"streamed\"} 1\n", text);
        Assert.Contains("tromai_gateway_rewrites_total{outcome=\"other\"} 1\n", text);
        Assert.Contains("tromai_gateway_rejects_total{reason=\"backlog\"} 1\n", text);
        Assert.Contains("tromai_gateway_rejects_total{reason=\"other\"} 1\n", text);
    }

    [Fact]
    public void Hot_path_calls_allocate_nothing_while_a_collector_listens()
    {
        // Not the interned literal: the Socket.IO client hands over a string of its own for every event.
        var token = new string("token".AsSpan());
        var unknown = new string("unheardOf".AsSpan());
        for (var i = 0; i < 100; i++)
        {
            Relay(token, unknown); // a tag set's first measurement creates its series
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            Relay(token, unknown);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Contains("tromai_gateway_events_relayed_total{event=\"token\"} 10100\n", _collector.Scrape());
    }

    private void Relay(string token, string unknown)
    {
        _metrics.Enqueued();
        _metrics.Dequeued();
        _metrics.EventRelayed(token, 0.3);
        _metrics.EventRelayed(unknown, 12);
        _metrics.UpstreamStateChanged(UpstreamState.Connected, UpstreamState.Reconnecting);
        _metrics.UpstreamStateChanged(UpstreamState.Reconnecting, UpstreamState.Connected);
        _metrics.SessionStarted();
        _metrics.SessionEnded();
        _metrics.Rewrite(GatewayMetrics.RewriteOutcome.Rewritten);
        _metrics.Rejected(GatewayMetrics.RejectReason.RequestRate);
    }
}
