using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>What a Prometheus server scraping <c>/metrics</c> reads: the exposition of every kind of instrument, and the endpoint on a real host.</summary>
[Collection(TelemetryTests.Collection)]
public sealed class PrometheusMetricsTests : IDisposable
{
    private readonly Meter _meter = new($"Test.Telemetry.{Guid.NewGuid():N}");
    private readonly MetricsCollector _collector;

    public PrometheusMetricsTests() => _collector = new MetricsCollector([_meter.Name], scope: null, NullLogger<MetricsCollector>.Instance);

    public void Dispose()
    {
        _collector.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public void Counter_is_a_total_with_one_line_per_tag_set()
    {
        var counter = _meter.CreateCounter<long>("test.requests", "{request}", "Requests served.");

        counter.Add(2, new("method", "GET"), new("status", 200));
        counter.Add(1, new("status", 200), new("method", "GET")); // same tag set, other order
        counter.Add(5, new("method", "POST"), new("status", 500));

        Assert.Equal(Lines(
            "# HELP test_requests_total Requests served.",
            "# TYPE test_requests_total counter",
            "test_requests_total{method=\"GET\",status=\"200\"} 3",
            "test_requests_total{method=\"POST\",status=\"500\"} 5"), _collector.Scrape());
    }

    [Fact]
    public void Up_down_counter_is_a_gauge_of_its_running_sum()
    {
        var depth = _meter.CreateUpDownCounter<int>("test.queue.depth", "{event}", "Events waiting.");

        depth.Add(3);
        depth.Add(-1);

        Assert.Equal(Lines(
            "# HELP test_queue_depth Events waiting.",
            "# TYPE test_queue_depth gauge",
            "test_queue_depth 2"), _collector.Scrape());
    }

    [Fact]
    public void Histogram_has_cumulative_buckets_at_the_advised_bounds_then_Inf_sum_and_count()
    {
        var latency = _meter.CreateHistogram<double>("test.latency", "s", "Latency.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.25, 1, 10] });
        var route = new KeyValuePair<string, object?>("route", "/a");

        latency.Record(0.125, route);
        latency.Record(0.25, route); // on a bound: counted in that bucket ("le")
        latency.Record(0.5, route);
        latency.Record(20, route);

        Assert.Equal(Lines(
            "# HELP test_latency_seconds Latency.",
            "# TYPE test_latency_seconds histogram",
            "test_latency_seconds_bucket{route=\"/a\",le=\"0.25\"} 2",
            "test_latency_seconds_bucket{route=\"/a\",le=\"1\"} 3",
            "test_latency_seconds_bucket{route=\"/a\",le=\"10\"} 3",
            "test_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4",
            "test_latency_seconds_sum{route=\"/a\"} 20.875",
            "test_latency_seconds_count{route=\"/a\"} 4"), _collector.Scrape());
    }

    [Fact]
    public void Histogram_without_advice_gets_default_buckets_for_its_unit()
    {
        _meter.CreateHistogram<double>("test.wait", "ms").Record(3);
        _meter.CreateHistogram<long>("test.duration", "s").Record(2);

        var text = _collector.Scrape();

        Assert.Contains("test_wait_milliseconds_bucket{le=\"0\"} 0\ntest_wait_milliseconds_bucket{le=\"5\"} 1\n", text);
        Assert.Contains("test_wait_milliseconds_bucket{le=\"10000\"} 1\ntest_wait_milliseconds_bucket{le=\"+Inf\"} 1\n", text);
        Assert.Contains("test_duration_seconds_bucket{le=\"1\"} 0\ntest_duration_seconds_bucket{le=\"2.5\"} 1\n", text);
        Assert.DoesNotContain("# HELP test_wait", text); // no description, no HELP line
    }

    [Fact]
    public void Observable_instruments_are_read_at_each_scrape_and_tag_sets_no_longer_reported_disappear()
    {
        Measurement<long>[] pools = [new(4, new KeyValuePair<string, object?>("pool", "a")), new(7, new KeyValuePair<string, object?>("pool", "b"))];
        var collections = 0L;
        _meter.CreateObservableGauge("test.pool.size", () => pools, "{connection}", "Connections in the pool.");
        _meter.CreateObservableCounter("test.collections", () => ++collections, "{collection}");

        var first = _collector.Scrape();
        pools = [new(5, new KeyValuePair<string, object?>("pool", "a"))];
        var second = _collector.Scrape();

        Assert.Contains("# TYPE test_pool_size gauge\ntest_pool_size{pool=\"a\"} 4\ntest_pool_size{pool=\"b\"} 7\n", first);
        Assert.Contains("# TYPE test_collections_total counter\ntest_collections_total 1\n", first);
        Assert.Contains("# TYPE test_pool_size gauge\ntest_pool_size{pool=\"a\"} 5\n", second);
        Assert.DoesNotContain("pool=\"b\"", second);
        Assert.Contains("test_collections_total 2\n", second); // the instrument's own total, not a sum of observations
    }

    [Fact]
    public void Names_are_sanitised_and_help_and_label_values_escaped()
    {
        var counter = _meter.CreateCounter<long>("test.odd-name/with spaces", "By", "Line one\\two\nthree \"quoted\"");
        var gauge = _meter.CreateUpDownCounter<long>("9lives");

        counter.Add(1, new("http.route", "say \"hi\" \\ bye\nnext"), new("is.ok", true));
        gauge.Add(1);

        Assert.Equal(Lines(
            "# TYPE _9lives gauge",
            "_9lives 1",
            "# HELP test_odd_name_with_spaces_bytes_total Line one\\\\two\\nthree \"quoted\"",
            "# TYPE test_odd_name_with_spaces_bytes_total counter",
            "test_odd_name_with_spaces_bytes_total{http_route=\"say \\\"hi\\\" \\\\ bye\\nnext\",is_ok=\"true\"} 1"), _collector.Scrape());
    }

    [Fact]
    public void Unlisted_meters_and_meters_of_another_container_are_not_exposed()
    {
        using var ours = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var theirs = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var name = $"Test.Scoped.{Guid.NewGuid():N}";
        using var unlisted = new Meter($"Test.Unlisted.{Guid.NewGuid():N}");
        using var collector = new MetricsCollector([name], ours.GetRequiredService<IMeterFactory>(), NullLogger<MetricsCollector>.Instance);

        theirs.GetRequiredService<IMeterFactory>().Create(name).CreateCounter<long>("test.hits").Add(40);
        theirs.GetRequiredService<IMeterFactory>().Create(name).CreateCounter<long>("test.theirs").Add(1);
        ours.GetRequiredService<IMeterFactory>().Create(name).CreateCounter<long>("test.hits").Add(1);
        unlisted.CreateCounter<long>("test.unlisted").Add(1);

        Assert.Equal(Lines("# TYPE test_hits_total counter", "test_hits_total 1"), collector.Scrape());
    }

    [Fact]
    public void Tag_sets_beyond_the_limit_are_counted_together_instead_of_growing_memory()
    {
        var counter = _meter.CreateCounter<long>("test.by.user");

        for (var i = 0; i < InstrumentAggregate.MaxSeries + 10; i++)
        {
            counter.Add(1, new KeyValuePair<string, object?>("user", i.ToString()));
        }

        var text = _collector.Scrape();
        Assert.Equal(InstrumentAggregate.MaxSeries + 1, text.Split('\n').Count(line => line.StartsWith("test_by_user_total{", StringComparison.Ordinal)));
        Assert.Contains("test_by_user_total{otel_metric_overflow=\"true\"} 10\n", text);
    }

    [Fact]
    public async Task Metrics_endpoint_serves_the_gateway_and_ASP_NET_Core_meters_in_Prometheus_format()
    {
        await using var host = await TelemetryHost.StartAsync();
        var metrics = host.Services.GetRequiredService<GatewayMetrics>();

        Assert.Equal("hi", await host.Http.GetStringAsync("hello"));
        for (var i = 0; i < 3; i++)
        {
            metrics.EventRelayed("token", 0.4);
        }

        metrics.EventRelayed("someEventFromTheFuture", 2);
        metrics.SessionStarted();
        metrics.SessionStarted();
        metrics.SessionEnded();
        metrics.UpstreamStateChanged(null, UpstreamState.Connecting);
        metrics.UpstreamStateChanged(UpstreamState.Connecting, UpstreamState.Connected);
        metrics.Enqueued();
        metrics.Enqueued();
        metrics.Dequeued();
        metrics.Rewrite(GatewayMetrics.RewriteOutcome.Rewritten);
        metrics.Rejected(GatewayMetrics.RejectReason.BodyTooLarge);
        metrics.Rejected("made_up_reason");

        // Hosting records a request's duration once the response has gone, so the client may be a moment ahead.
        var (response, text) = await ScrapeUntilAsync(host.Http, "/metrics", text => text.Contains("http_route=\"/hello\""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        var lines = text.Split('\n');
        Assert.Contains("tromai_gateway_events_relayed_total{event=\"token\"} 3", lines);
        Assert.Contains("tromai_gateway_events_relayed_total{event=\"other\"} 1", lines);
        Assert.Contains("tromai_gateway_sessions_active 1", lines);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"connecting\"} 0", lines);
        Assert.Contains("tromai_gateway_upstream_sessions{state=\"connected\"} 1", lines);
        Assert.Contains("tromai_gateway_relay_queue_depth 1", lines);
        Assert.Contains("# TYPE tromai_gateway_relay_latency_milliseconds histogram", lines);
        Assert.Contains("tromai_gateway_relay_latency_milliseconds_bucket{le=\"0.25\"} 0", lines);
        Assert.Contains("tromai_gateway_relay_latency_milliseconds_bucket{le=\"0.5\"} 3", lines);
        Assert.Contains("tromai_gateway_relay_latency_milliseconds_count 4", lines);
        Assert.Contains("tromai_gateway_rewrites_total{outcome=\"rewritten\"} 1", lines);
        Assert.Contains("tromai_gateway_rejects_total{reason=\"body_too_large\"} 1", lines);
        Assert.Contains("tromai_gateway_rejects_total{reason=\"other\"} 1", lines);

        Assert.Contains("# TYPE http_server_request_duration_seconds histogram", lines);
        Assert.Contains(lines, line => line.StartsWith("http_server_request_duration_seconds_bucket{", StringComparison.Ordinal)
            && line.Contains("http_route=\"/hello\"") && line.Contains("http_response_status_code=\"200\"") && line.EndsWith("le=\"+Inf\"} 1", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith("kestrel_active_connections", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith("dotnet_process_cpu_count", StringComparison.Ordinal)); // observable, read at the scrape
    }

    [Fact]
    public async Task Metrics_path_comes_from_configuration()
    {
        await using var host = await TelemetryHost.StartAsync(new Dictionary<string, string?> { ["Gateway:Telemetry:MetricsPath"] = "/internal/metrics" });
        host.Services.GetRequiredService<GatewayMetrics>().EventRelayed("token", 1);

        var text = await host.Http.GetStringAsync("internal/metrics");
        using var old = await host.Http.GetAsync("metrics");

        Assert.Contains("tromai_gateway_events_relayed_total{event=\"token\"} 1\n", text);
        Assert.Equal(HttpStatusCode.NotFound, old.StatusCode);
    }

    [Fact]
    public async Task Disabled_telemetry_serves_no_metrics()
    {
        await using var host = await TelemetryHost.StartAsync(new Dictionary<string, string?> { ["Gateway:Telemetry:Enabled"] = "false" });
        host.Services.GetRequiredService<GatewayMetrics>().EventRelayed("token", 1); // the lead's calls still work

        using var response = await host.Http.GetAsync("metrics");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData("Gateway:Telemetry:MetricsPath", "metrics", "Gateway:Telemetry:MetricsPath must be a path starting with '/'")]
    [InlineData("Gateway:Telemetry:OtlpEndpoint", "collector:4317", "Gateway:Telemetry:OtlpEndpoint must be an absolute http:// or https:// URL")]
    [InlineData("Gateway:Telemetry:OtlpExportInterval", "00:00:00", "Gateway:Telemetry:OtlpExportInterval must be a positive time span")]
    public async Task A_bad_setting_stops_start_up_naming_its_key(string key, string value, string message)
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => TelemetryHost.StartAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(failure.Failures, f => f.StartsWith(message, StringComparison.Ordinal));
    }

    private static async Task<(HttpResponseMessage Response, string Text)> ScrapeUntilAsync(HttpClient http, string path, Func<string, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var response = await http.GetAsync(path.TrimStart('/'));
            var text = await response.Content.ReadAsStringAsync();
            if (done(text) || DateTime.UtcNow > deadline)
            {
                return (response, text);
            }

            response.Dispose();
            await Task.Delay(50);
        }
    }

    private static string Lines(params string[] lines) => string.Join('\n', lines) + "\n";
}
