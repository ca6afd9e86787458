using System.Net;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// Two gateway instances on one real redis-server: what an application sends through SignalR on one
/// instance reaches the clients connected to the other (ASP.NET Core's Redis backplane); during a Redis
/// outage, what is sent to this instance's own connections still arrives.
/// </summary>
public sealed class RedisBackplaneTests : RedisTestBase
{
    [Fact]
    public async Task IHubContext_sends_on_one_instance_reach_a_client_connected_to_the_other()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(a.HubUrl, "notice");
        await using var _ = connection;
        var location = (await b.WaitForLookupAsync(id, SessionLookupStatus.Found)).Location;
        var hub = b.Services.GetRequiredService<IHubContext<PredictionHub>>();

        await hub.Clients.Client(location.ConnectionId).SendAsync("notice", "to you");
        await hub.Clients.All.SendAsync("notice", "to everyone");

        await events.WaitForAsync(e => e.Count == 2, Timeout);
        Assert.Equal(["to you", "to everyone"], events.Snapshot().Select(e => e.Args[0].GetString()));
    }

    [Fact]
    public async Task In_SSE_mode_a_REST_prediction_on_one_instance_streams_to_a_connection_on_the_other()
    {
        await using var sse = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });
        var settings = SharedRedis.Settings(Redis, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "sse" });
        await using var a = await GatewayHost.StartAsync(sse.BaseUrl, settings);
        await using var b = await GatewayHost.StartAsync(sse.BaseUrl, settings);
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(a.HubUrl, "token", "end");
        await using var _ = connection;
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found);

        var (status, answer) = await Predictions.PostAsync(b.Http, "tokens", new { question = "q", socketIOClientId = id, overrideConfig = new { count = 200 } });

        Assert.Equal(HttpStatusCode.OK, status);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        var tokens = events.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()).ToList();
        Assert.Equal(Enumerable.Range(0, 200).Select(t => $"q:{t}"), tokens);
        Assert.Equal(string.Concat(tokens), answer.GetProperty("text").GetString());
    }

    [Fact]
    public async Task A_connection_opened_while_Redis_is_down_is_reached_from_the_other_instance_once_Redis_is_back()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        await Redis.StopAsync();

        var (connection, events, id) = await HubClients.ConnectAndListenAsync(a.HubUrl, "notice", "token", "end");
        await using var _ = connection;
        await Predictions.PostAsync(a.Http, "echo-question", new { question = "served locally", socketIOClientId = id });
        await events.WaitForEventAsync("end", Timeout);
        Assert.True(a.Directory().TryGetLocal(id, out var local));
        await a.Services.GetRequiredService<IHubContext<PredictionHub>>().Clients.Client(local.ConnectionId).SendAsync("notice", "local");
        await events.WaitForEventAsync("notice", Timeout, e => e.Args[0].GetString() == "local");
        var lost = await Record.ExceptionAsync(() => b.Services.GetRequiredService<IHubContext<PredictionHub>>().Clients.All.SendAsync("notice", "lost"));
        Assert.True(lost is RedisConnectionException or TimeoutException, $"Expected the send to fail while Redis is down, got {lost}");

        await Redis.StartAsync();
        var location = (await b.WaitForLookupAsync(id, SessionLookupStatus.Found)).Location;
        var hub = b.Services.GetRequiredService<IHubContext<PredictionHub>>();

        // Pub/sub keeps nothing: until instance A has subscribed the connection's channel, a send is lost. Ask until one arrives.
        await SharedRedis.WaitUntilAsync(async () =>
        {
            await hub.Clients.Client(location.ConnectionId).SendAsync("notice", "across");
            return events.Snapshot().Any(e => e.Name == "notice" && e.Args[0].GetString() == "across");
        }, () => "a send from instance B to arrive");
        Assert.DoesNotContain(events.Snapshot(), e => e.Name == "notice" && e.Args[0].GetString() == "lost");
    }
}
