using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>What a Prometheus server scraping a gateway's <c>/metrics</c> reads, on a real gateway in front of the test upstream.</summary>
[Collection(TelemetryTests.Collection)]
public sealed class MetricsEndpointTests(TelemetryTests.UpstreamFixture fixture)
{
    private const string ApiKey = "gateway-key-for-metrics-tests";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static readonly string[] EventNames =
    [
        "start", "token", "end", "sourceDocuments", "tool", "usedTools", "calledTools", "fileAnnotations", "agentReasoning",
        "nextAgent", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "abort", "action", "thinking", "artifacts", "metadata",
        "usageMetadata", "error", "tts_start", "tts_data", "tts_end", "tts_abort",
        "gateway:upstream-lost", "gateway:upstream-restored", "gateway:draining", "other",
    ];

    private static readonly string[] RewriteOutcomes = ["rewritten", "unchanged", "reconnecting", "streamed", "other"];

    private static readonly string[] RejectReasons =
    [
        "backlog", "connection_limit", "ip_connection_limit", "connect_rate", "request_rate", "body_too_large", "invalid_body", "body_budget",
        "message_too_large", "upstream_unavailable", "upstream_timeout", "unauthorized", "draining", "other",
    ];

    [Fact]
    public async Task A_fresh_gateway_shows_every_gateway_series_at_zero()
    {
        await using var gateway = await fixture.StartGatewayAsync();

        var scrape = await PrometheusScrape.GetAsync(gateway.Http);

        Assert.Equal(HttpStatusCode.OK, scrape.Status);
        string[] expected =
        [
            "tromai_gateway_sessions_active",
            "tromai_gateway_relay_queue_depth",
            "tromai_gateway_upstream_warm_sockets",
            .. new[] { "connecting", "connected", "reconnecting" }.Select(state => $"tromai_gateway_upstream_sessions{{state=\"{state}\"}}"),
            .. EventNames.Select(name => $"tromai_gateway_events_relayed_total{{event=\"{name}\"}}"),
            .. RewriteOutcomes.Select(outcome => $"tromai_gateway_rewrites_total{{outcome=\"{outcome}\"}}"),
            .. RejectReasons.Select(reason => $"tromai_gateway_rejects_total{{reason=\"{reason}\"}}"),
        ];
        Assert.All(expected, series => Assert.Equal(0, scrape[series]));
        Assert.Equal(expected.Order(), scrape.Series.Keys.Where(series => series.StartsWith("tromai_gateway_", StringComparison.Ordinal)).Order());
        Assert.Equal("gauge", scrape.Types["tromai_gateway_sessions_active"]);
        Assert.Equal("gauge", scrape.Types["tromai_gateway_upstream_sessions"]);
        Assert.Equal("gauge", scrape.Types["tromai_gateway_relay_queue_depth"]);
        Assert.Equal("gauge", scrape.Types["tromai_gateway_upstream_warm_sockets"]);
        Assert.Equal("counter", scrape.Types["tromai_gateway_events_relayed_total"]);
        Assert.Equal("counter", scrape.Types["tromai_gateway_rewrites_total"]);
        Assert.Equal("counter", scrape.Types["tromai_gateway_rejects_total"]);

        // A histogram series exists once something was measured: none yet, rather than a made-up sample.
        Assert.DoesNotContain("tromai_gateway_relay_latency", scrape.Text);
    }

    [Fact]
    public async Task A_relayed_prediction_moves_the_gateway_series_and_the_framework_s_own()
    {
        await using var gateway = await fixture.StartGatewayAsync();
        using var http = OneConnectionClient(gateway);
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "start", "token", "end");
        await using (connection)
        {
            var (status, _) = await Predictions.PostAsync(http, "tokens", new { question = "Hi", socketIOClientId = id, overrideConfig = new { count = 5 } });
            await events.WaitForEventAsync("end", Timeout);

            var scrape = await PrometheusScrape.GetAsync(http);

            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(5, scrape["tromai_gateway_events_relayed_total{event=\"token\"}"]);
            Assert.Equal(1, scrape["tromai_gateway_events_relayed_total{event=\"start\"}"]);
            Assert.Equal(1, scrape["tromai_gateway_rewrites_total{outcome=\"rewritten\"}"]);
            Assert.Equal(1, scrape["tromai_gateway_sessions_active"]);
            Assert.Equal(1, scrape["tromai_gateway_upstream_sessions{state=\"connected\"}"]);
            Assert.True(scrape["tromai_gateway_relay_latency_milliseconds_count"] >= 6, "start and the tokens were timed");

            // ASP.NET Core's request duration, by route (recorded before this connection's next request is read),
            // Kestrel's and SignalR's connections, the outgoing call to TROM.AI, and the runtime.
            Assert.Contains(scrape.Series, series => series.Key.StartsWith("http_server_request_duration_seconds_count{", StringComparison.Ordinal)
                && series.Key.Contains("http_route=\"/api/v1/prediction/{**id}\"", StringComparison.Ordinal) && series.Value == 1);
            Assert.Contains(scrape.Series.Keys, series => series.StartsWith("kestrel_active_connections", StringComparison.Ordinal));
            Assert.Contains(scrape.Series, series => series.Key.StartsWith("signalr_server_active_connections", StringComparison.Ordinal) && series.Value == 1);
            Assert.Contains(scrape.Series.Keys, series => series.StartsWith("http_client_request_duration_seconds_count{", StringComparison.Ordinal)
                && series.Contains("http_request_method=\"POST\"", StringComparison.Ordinal));
            Assert.Contains(scrape.Series.Keys, series => series.StartsWith("dotnet_process_cpu_count", StringComparison.Ordinal)); // observable, read at the scrape
        }
    }

    [Fact]
    public async Task Two_gateways_in_one_process_each_report_their_own()
    {
        await using var busy = await fixture.StartGatewayAsync();
        await using var idle = await fixture.StartGatewayAsync();
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(busy.HubUrl, "end");
        await using (connection)
        {
            await Predictions.PostAsync(busy.Http, "tokens", new { question = "Hi", socketIOClientId = id, overrideConfig = new { count = 4 } });
            await events.WaitForEventAsync("end", Timeout);

            var busyScrape = await PrometheusScrape.GetAsync(busy.Http);
            var idleScrape = await PrometheusScrape.GetAsync(idle.Http);

            Assert.Equal(4, busyScrape["tromai_gateway_events_relayed_total{event=\"token\"}"]);
            Assert.Equal(1, busyScrape["tromai_gateway_sessions_active"]);
            Assert.Equal(0, idleScrape["tromai_gateway_events_relayed_total{event=\"token\"}"]);
            Assert.Equal(0, idleScrape["tromai_gateway_sessions_active"]);
            Assert.DoesNotContain(idleScrape.Series.Keys, series => series.StartsWith("signalr_server_active_connections", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task With_authentication_on_scrapes_stay_open_and_name_no_upstream_address()
    {
        await using var gateway = await fixture.StartGatewayAsync(new Dictionary<string, string?>
        {
            ["Gateway:Auth:ApiKeys:0"] = ApiKey,
            ["Gateway:Upstream:ApiKey"] = "tromai-upstream-key",
        });
        var events = new EventRecorder();
        await using var connection = HubClients.Create(gateway.HubUrl, connection: options => options.AccessTokenProvider = () => Task.FromResult<string?>(ApiKey));
        events.Listen(connection, "end");
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        // TROM.AI is called three ways: proxied REST, the hub's own HttpClient (Predict), the Socket.IO session.
        using var rest = new HttpRequestMessage(HttpMethod.Post, "api/v1/prediction/tokens")
        {
            Headers = { { "X-Api-Key", ApiKey } },
            Content = JsonContent.Create(new { question = "Hi", socketIOClientId = id, overrideConfig = new { count = 3 } }),
        };
        using var answer = await gateway.Http.SendAsync(rest);
        await events.WaitForEventAsync("end", Timeout);
        var predicted = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "Hi", overrideConfig = new { count = 3 } }));

        var scrape = await PrometheusScrape.GetAsync(gateway.Http); // no credentials

        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("result", predicted[^1].Event);
        Assert.Equal(HttpStatusCode.OK, scrape.Status);
        Assert.Contains(scrape.Series.Keys, series => series.StartsWith("http_client_request_duration_seconds_count{", StringComparison.Ordinal));
        var upstream = fixture.Upstream.BaseUrl;
        Assert.All(scrape.Series.Keys, series =>
        {
            Assert.DoesNotContain(upstream.Host, series);
            Assert.DoesNotContain($"\"{upstream.Port}\"", series);
            Assert.DoesNotContain("localhost", series);
            foreach (var label in (string[])["server_address", "server_port", "network_peer_address", "network_peer_port", "url_full", "dns_question_name"])
            {
                Assert.DoesNotContain(label + "=", series);
            }
        });
    }

    [Fact]
    public async Task Metrics_path_comes_from_configuration()
    {
        await using var gateway = await fixture.StartGatewayAsync(new Dictionary<string, string?> { ["Gateway:Telemetry:MetricsPath"] = "/internal/metrics" });

        var moved = await PrometheusScrape.GetAsync(gateway.Http, "internal/metrics");
        using var old = await gateway.Http.GetAsync("metrics"); // now proxied to TROM.AI like any other path

        Assert.Equal(0, moved["tromai_gateway_sessions_active"]);
        Assert.DoesNotContain("tromai_gateway_", await old.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Disabled_telemetry_serves_no_metrics()
    {
        await using var gateway = await fixture.StartGatewayAsync(new Dictionary<string, string?> { ["Gateway:Telemetry:Enabled"] = "false" });

        using var response = await gateway.Http.GetAsync("metrics"); // proxied: TROM.AI answers it

        Assert.DoesNotContain("tromai_gateway_", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("Gateway:Telemetry:MetricsPath", "metrics", "Gateway:Telemetry:MetricsPath must be a path starting with '/'")]
    [InlineData("Gateway:Telemetry:OtlpEndpoint", "collector:4317", "Gateway:Telemetry:OtlpEndpoint must be an absolute http:// or https:// URL")]
    [InlineData("Gateway:Telemetry:OtlpEndpoint", "http://collector:4318/v1/metrics", "Gateway:Telemetry:OtlpEndpoint is the collector's address")]
    [InlineData("Gateway:Telemetry:OtlpExportInterval", "00:00:00", "Gateway:Telemetry:OtlpExportInterval must be a positive time span")]
    [InlineData("Gateway:Telemetry:OtlpProtocol", "Http", "Failed to convert configuration value 'Http' at 'Gateway:Telemetry:OtlpProtocol'")]
    public async Task A_bad_setting_stops_start_up_naming_its_key(string key, string value, string message)
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => fixture.StartGatewayAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(failure.Failures, f => f.StartsWith(message, StringComparison.Ordinal));
    }

    /// <summary>
    /// Kestrel reads a connection's next request only once the previous one is done, metrics
    /// recorded included: with one connection, a scrape sees the requests sent before it.
    /// </summary>
    private static HttpClient OneConnectionClient(GatewayHost gateway) =>
        new(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = gateway.BaseUrl, Timeout = Timeout };
}
