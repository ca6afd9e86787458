using System.Text;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>
/// With <c>Gateway:Telemetry:OtlpEndpoint</c> set, the gateway's meters reach an OpenTelemetry
/// collector. The export interval is set to an hour, so what arrives was sent by the shutdown: the
/// exporter lives exactly as long as the host's container.
/// </summary>
[Collection(TelemetryTests.Collection)]
public sealed class OtlpMetricsExportTests
{
    [Fact]
    public async Task Without_an_endpoint_nothing_is_exported()
    {
        await using var gateway = await TelemetryHost.StartAsync();

        Assert.Null(gateway.Services.GetRequiredService<OtlpMetricsExport>().Provider);
    }

    [Fact]
    public async Task Metrics_reach_an_OTLP_HTTP_collector_in_a_last_export_when_the_host_shuts_down()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: false);
        var gateway = await TelemetryHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Telemetry:OtlpEndpoint"] = collector.BaseUrl.ToString(), // no path: /v1/metrics is added
            ["Gateway:Telemetry:OtlpProtocol"] = "HttpProtobuf",
            ["Gateway:Telemetry:OtlpExportInterval"] = "01:00:00",
        });
        var export = gateway.Services.GetRequiredService<OtlpMetricsExport>();
        RelayThreeTokens(gateway);

        Assert.NotNull(export.Provider);
        Assert.Empty(collector.Exports);
        await gateway.DisposeAsync();

        Assert.Null(export.Provider);
        var sent = Assert.Single(collector.Exports);
        Assert.Equal("/v1/metrics", sent.Path);
        Assert.Equal("application/x-protobuf", sent.ContentType);
        AssertCarriesTheGatewayMeter(sent.Body);
    }

    [Fact]
    public async Task Metrics_reach_an_OTLP_gRPC_collector_by_default()
    {
        await using var collector = await OtlpReceiver.StartAsync(grpc: true);
        var gateway = await TelemetryHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Telemetry:OtlpEndpoint"] = collector.BaseUrl.ToString(),
            ["Gateway:Telemetry:OtlpExportInterval"] = "01:00:00",
        });
        RelayThreeTokens(gateway);

        await gateway.DisposeAsync();

        var sent = Assert.Single(collector.Exports);
        Assert.Equal(OtlpReceiver.GrpcExportPath, sent.Path);
        Assert.Equal("application/grpc", sent.ContentType);
        AssertCarriesTheGatewayMeter(sent.Body);
    }

    private static void RelayThreeTokens(TelemetryHost gateway)
    {
        var metrics = gateway.Services.GetRequiredService<GatewayMetrics>();
        for (var i = 0; i < 3; i++)
        {
            metrics.EventRelayed("token", 0.5);
        }
    }

    /// <summary>Protobuf keeps strings as UTF-8 bytes: the meter, the instrument and its tag value are in the body as they are.</summary>
    private static void AssertCarriesTheGatewayMeter(byte[] body)
    {
        Assert.True(Contains(body, GatewayMetrics.MeterName), "the export names the TromAi.Gateway meter");
        Assert.True(Contains(body, "tromai.gateway.events.relayed"), "the export carries the relayed-events counter");
        Assert.True(Contains(body, "tromai.gateway.relay.latency"), "the export carries the latency histogram");
        Assert.True(Contains(body, "token"), "the export carries the event tag");
    }

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}
