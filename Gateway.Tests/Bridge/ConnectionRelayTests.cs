using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>A client that stops reading is cut off once its backlog is full and it has taken nothing for <c>Relay:SlowClientTimeout</c>; its neighbours do not notice.</summary>
public sealed class ConnectionRelayTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_client_that_stops_reading_is_cut_off_while_its_neighbour_keeps_streaming()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            // Above the neighbour's whole burst, so only a client that does not read can reach it.
            ["Gateway:Relay:MaxBacklog"] = "5000",
            ["Gateway:Upstream:WarmSockets"] = "0", // the upstream's sockets are then the sessions' own
            ["Gateway:Relay:SlowClientTimeout"] = "00:00:02",
        });
        // The stalled client reaches the gateway through a relay that can stop reading for it. It waits for the
        // gateway far longer than the test runs, so only the gateway can end its connection.
        await using var relay = new TcpRelay(gateway.BaseUrl.Port);
        await using var stalled = await HubClients.StartAsync(relay.Through(gateway.HubUrl), hub => hub.WithServerTimeout(TimeSpan.FromMinutes(10)));
        var closed = new TaskCompletionSource();
        stalled.Closed += _ => { closed.TrySetResult(); return Task.CompletedTask; };
        stalled.On<string>("token", _ => { });
        var stalledId = await stalled.InvokeAsync<string>("GetSocketIOClientId");

        var neighbourEvents = new EventRecorder();
        await using var neighbour = HubClients.Create(gateway.HubUrl);
        neighbourEvents.Listen(neighbour, "token", "end");
        await neighbour.StartAsync();
        var neighbourId = await neighbour.InvokeAsync<string>("GetSocketIOClientId");

        relay.PauseDelivery();
        // ~80 MB of 2 KB tokens: far more than the socket and pipe buffers between the gateway and the client hold.
        var flood = Predictions.PostAsync(gateway.Http, "tokens",
            new { question = new string('x', 2000), socketIOClientId = stalledId, overrideConfig = new { count = 40_000 } });
        await upstream.WaitForSocketCountAsync(1, Timeout); // the stalled connection's upstream session is gone

        var (status, _) = await Predictions.PostAsync(gateway.Http, "tokens",
            new { question = "n", socketIOClientId = neighbourId, overrideConfig = new { count = 2_000 } });
        Assert.Equal(HttpStatusCode.OK, status);
        await neighbourEvents.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(Enumerable.Range(0, 2_000).Select(i => $"n:{i}"), neighbourEvents.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()));
        Assert.Equal(HttpStatusCode.OK, (await flood).Status);

        relay.ResumeDelivery();
        await closed.Task.WaitAsync(Timeout);
        Assert.Equal(HubConnectionState.Disconnected, stalled.State);
        Assert.Equal(HubConnectionState.Connected, neighbour.State);
        // Cut for its backlog, as operators see it: without the limit, SignalR's transport send timeout cuts it too, later and uncounted.
        Assert.Contains("tromai_gateway_rejects_total{reason=\"backlog\"} 1\n", await gateway.Http.GetStringAsync("metrics"));
    }
}
