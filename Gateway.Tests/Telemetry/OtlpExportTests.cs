using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>
/// With <c>Gateway:Telemetry:OtlpEndpoint</c> set, metrics and traces reach an OpenTelemetry
/// collector. The metric interval is an hour, so the metrics that arrive were sent by the
/// shutdown: the exporters live exactly as long as the gateway's container.
/// </summary>
[Collection(TelemetryTests.Collection)]
public sealed class OtlpExportTests(TelemetryTests.UpstreamFixture fixture)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // The test's own root span: each prediction's spans carry its trace id (ASP.NET Core and SignalR
    // continue the caller's trace), which tells them from those of gateways in other tests.
    private const string TestSourceName = "TromAi.Gateway.Tests";
    private static readonly ActivitySource TestSource = new(TestSourceName);

    [Fact]
    public async Task Metrics_reach_an_OTLP_HTTP_collector_at_its_metrics_path()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: false);
        var gateway = await StartGatewayAsync(collector, "HttpProtobuf");
        RelayThreeTokens(gateway);

        Assert.DoesNotContain(collector.Exports, export => export.Signal == OtlpReceiver.Signal.Metrics);
        await gateway.DisposeAsync();

        var sent = Assert.Single(collector.Exports, export => export.Signal == OtlpReceiver.Signal.Metrics);
        Assert.Equal("/v1/metrics", sent.Path);
        Assert.Equal("application/x-protobuf", sent.ContentType);
        AssertCarriesTheGatewayMeter(sent);
    }

    [Fact]
    public async Task Metrics_reach_an_OTLP_gRPC_collector_by_default()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: true);
        var gateway = await StartGatewayAsync(collector, protocol: null);
        RelayThreeTokens(gateway);

        await gateway.DisposeAsync();

        var sent = Assert.Single(collector.Exports, export => export.Signal == OtlpReceiver.Signal.Metrics);
        Assert.Equal(OtlpReceiver.GrpcMetricsPath, sent.Path);
        Assert.Equal("application/grpc", sent.ContentType);
        AssertCarriesTheGatewayMeter(sent);
    }

    [Fact]
    public async Task A_hub_Predict_is_traced_with_its_chatflow_and_the_call_to_TROM_AI_under_it()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: false);
        var gateway = await StartGatewayAsync(collector, "HttpProtobuf");
        string traceId;
        const string secret = "a-token-in-the-websocket-query";
        await using (var connection = await HubClients.StartAsync(new Uri(gateway.HubUrl, $"?access_token={secret}"), HubClients.SkipNegotiation))
        {
            using var listening = ListenToTheTestAndSignalRClient();
            using (var root = TestSource.StartActivity("Predict")!)
            {
                traceId = root.TraceId.ToHexString();
                var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "Hi", overrideConfig = new { count = 3 } }));
                Assert.Equal("result", items[^1].Event);
            }
        }

        await gateway.DisposeAsync(); // the last batch of spans goes with the shutdown

        var trace = Spans(collector).Where(span => span.TraceId == traceId).ToList();
        var hub = Assert.Single(trace, span => span.Name == "TromAi.Gateway.Bridge.PredictionHub/Predict");
        var prediction = Assert.Single(trace, span => span.Name == GatewayActivity.PredictionName);
        var upstream = Assert.Single(trace, span => span.ParentSpanId == prediction.SpanId);
        Assert.Equal(hub.SpanId, prediction.ParentSpanId);
        Assert.Equal("tokens", prediction.Attributes["tromai.chatflow.id"]);
        Assert.Equal(GatewayActivity.SourceName, prediction.Scope);
        Assert.Equal(OtlpSpan.SpanKind.Client, upstream.Kind);
        Assert.Equal("POST", upstream.Attributes["http.request.method"]);
        Assert.Equal("200", upstream.Attributes["http.response.status_code"]);
        AssertNamesNoUpstreamAddress(collector);
        Assert.Contains(Spans(collector), span => span.Attributes.GetValueOrDefault("url.query") == "?access_token=Redacted"); // the hub's WebSocket request
        Assert.DoesNotContain(collector.Exports, export => export.Contains(secret));
    }

    [Fact]
    public async Task A_REST_prediction_is_traced_with_its_chatflow_and_the_proxied_call_under_it()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: true);
        var gateway = await StartGatewayAsync(collector, protocol: null);
        string traceId;
        using (ListenToTheTestAndSignalRClient())
        using (var root = TestSource.StartActivity("POST prediction")!)
        {
            traceId = root.TraceId.ToHexString();
            using var response = await gateway.Http.PostAsJsonAsync("api/v1/prediction/echo-question", new { question = "Hi" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await PrometheusScrape.GetAsync(gateway.Http)).Status); // in the same trace, but not traced
        }

        await gateway.DisposeAsync();

        var trace = Spans(collector).Where(span => span.TraceId == traceId).ToList();
        var request = Assert.Single(trace, span => span.Kind == OtlpSpan.SpanKind.Server); // the prediction's, not the scrape's
        var prediction = Assert.Single(trace, span => span.Name == GatewayActivity.PredictionName);
        var upstream = Assert.Single(trace, span => span.ParentSpanId == prediction.SpanId);
        Assert.Equal(request.SpanId, prediction.ParentSpanId);
        Assert.Equal("/api/v1/prediction/{**id}", request.Attributes["http.route"]);
        Assert.Equal("echo-question", prediction.Attributes["tromai.chatflow.id"]);
        Assert.Equal(OtlpSpan.SpanKind.Client, upstream.Kind);
        Assert.Equal("POST", upstream.Attributes["http.request.method"]);
        AssertNamesNoUpstreamAddress(collector);
    }

    [Fact]
    public async Task Without_an_endpoint_there_is_no_tracing_and_no_export()
    {
        await using var gateway = await fixture.StartGatewayAsync();

        Assert.Null(gateway.Services.GetService<TracerProvider>());
        Assert.Equal(0, (await PrometheusScrape.GetAsync(gateway.Http))["tromai_gateway_sessions_active"]); // metrics are still served
    }

    private Task<GatewayHost> StartGatewayAsync(OtlpReceiver collector, string? protocol)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Telemetry:OtlpEndpoint"] = collector.BaseUrl.ToString(),
            ["Gateway:Telemetry:OtlpExportInterval"] = "01:00:00",
        };
        if (protocol is not null)
        {
            settings["Gateway:Telemetry:OtlpProtocol"] = protocol;
        }

        return fixture.StartGatewayAsync(settings);
    }

    /// <summary>Samples this test's spans and the .NET SignalR client's, which carries the trace to the hub in the invocation.</summary>
    private static ActivityListener ListenToTheTestAndSignalRClient()
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is TestSourceName or "Microsoft.AspNetCore.SignalR.Client",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    private static List<OtlpSpan> Spans(OtlpReceiver collector) =>
        collector.Exports.Where(export => export.Signal == OtlpReceiver.Signal.Traces).SelectMany(export => OtlpSpan.Read(export.Body)).ToList();

    private static void RelayThreeTokens(GatewayHost gateway)
    {
        var metrics = gateway.Services.GetRequiredService<GatewayMetrics>();
        for (var i = 0; i < 3; i++)
        {
            metrics.EventRelayed("token", 0.5);
        }
    }

    private static void AssertCarriesTheGatewayMeter(OtlpReceiver.Export export)
    {
        Assert.True(export.Contains(GatewayMetrics.MeterName), "the export names the TromAi.Gateway meter");
        Assert.True(export.Contains("tromai.gateway.events.relayed"), "the export carries the relayed-events counter");
        Assert.True(export.Contains("tromai.gateway.relay.latency"), "the export carries the latency histogram");
        Assert.True(export.Contains("token"), "the export carries the event tag");
        Assert.True(export.Contains("dotnet.process.cpu.count"), "the export carries the runtime's meter too");
    }

    /// <summary>No metric or span sent to the collector names TROM.AI's host, port or URL.</summary>
    private void AssertNamesNoUpstreamAddress(OtlpReceiver collector)
    {
        var upstream = fixture.Upstream.BaseUrl;
        Assert.Contains(collector.Exports, export => export.Signal == OtlpReceiver.Signal.Metrics);
        Assert.All(collector.Exports, export =>
        {
            Assert.False(export.Contains($"{upstream.Host}:{upstream.Port}"), $"{export.Path} names the upstream's address");
            foreach (var key in (string[])["server.address", "server.port", "network.peer.address", "network.peer.port", "url.full", "dns.question.name"])
            {
                Assert.False(export.Contains(key), $"{export.Path} carries {key}");
            }
        });
    }
}
