using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// Whatever transport and protocol a client ends up with (a proxy that blocks WebSockets, a load balancer without
/// affinity, MessagePack), it gets every event and can stream a prediction.
/// </summary>
public sealed class HubTransportTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(HttpTransportType.WebSockets, true, "json")]
    [InlineData(HttpTransportType.ServerSentEvents, false, "json")]
    [InlineData(HttpTransportType.LongPolling, false, "json")]
    [InlineData(HttpTransportType.WebSockets, true, "messagepack")]
    [InlineData(HttpTransportType.LongPolling, false, "messagepack")]
    public async Task Every_event_and_a_Predict_stream_arrive_over_each_transport_and_protocol(HttpTransportType transport, bool skipNegotiation, string protocol)
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(
            bridge.Gateway.HubUrl,
            hub =>
            {
                if (protocol == "messagepack")
                {
                    hub.AddMessagePackProtocol();
                }
            },
            options =>
            {
                options.Transports = transport;
                options.SkipNegotiation = skipNegotiation;
            });
        events.Listen(connection, Predictions.AllEventNames);
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var (status, _) = await Predictions.PostAsync(bridge.Gateway.Http, "all-events", new { question = "Hi", socketIOClientId = id });
        await events.WaitForAsync(received => received.Count >= AllEvents.Expected.Count, Timeout);
        var streamed = new List<string>();
        using var timeout = new CancellationTokenSource(Timeout);
        await foreach (var item in connection.StreamAsync<Dictionary<string, object?>>("Predict", "all-events", new { question = "Hi" }).WithCancellation(timeout.Token))
        {
            streamed.Add(item["event"] is JsonElement name ? name.GetString()! : (string)item["event"]!); // JSON reads object as JsonElement
        }

        Assert.Equal(HttpStatusCode.OK, status);
        AllEvents.AssertReceived(events.Snapshot().Select(e => (e.Name, JsonSerializer.SerializeToElement(e.Args))).ToList());
        Assert.Equal([Predictions.StreamHeader, .. AllEvents.Expected.Select(e => e.Name), "result"], streamed);
    }
}
