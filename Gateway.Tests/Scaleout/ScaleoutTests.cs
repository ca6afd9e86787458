using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// Three gateway instances, two TROM.AI replicas, one Redis: any instance takes any request, and a
/// prediction reaches the replica that holds its socket.
/// </summary>
public sealed class ScaleoutTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = SharedRedis.Timeout;
    private RedisServer _redis = null!;
    private TestUpstream _replicaA = null!, _replicaB = null!;

    public async Task InitializeAsync()
    {
        _redis = new RedisServer();
        await _redis.StartAsync();
        _replicaA = await TestUpstream.StartAsync();
        _replicaB = await TestUpstream.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _replicaA.DisposeAsync();
        await _replicaB.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private Dictionary<string, string?> Settings(string? redis = null)
    {
        var settings = SharedRedis.Settings(_redis, new Dictionary<string, string?>
        {
            ["Gateway:Upstream:Destinations:0"] = _replicaA.BaseUrl.ToString(),
            ["Gateway:Upstream:Destinations:1"] = _replicaB.BaseUrl.ToString(),
            // These tests count each replica's sockets: with none opened ahead, each is a session's own.
            ["Gateway:Upstream:WarmSockets"] = "0",
        });
        if (redis is not null)
        {
            settings["Gateway:Redis:Configuration"] = redis;
        }

        return settings;
    }

    private Task<GatewayHost> StartGatewayAsync() => GatewayHost.StartAsync(_replicaA.BaseUrl, Settings());

    [Fact]
    public async Task Connect_at_one_instance_post_at_another_and_every_token_arrives_in_order()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        await using var c = await StartGatewayAsync();
        var clients = new List<(HubConnection Connection, EventRecorder Events, string Id)>();
        try
        {
            // Four sessions from A: two land on each replica, so half the POSTs below would vanish
            // if C load-balanced them instead of sending each to its socket's replica.
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await ConnectAsync(a));
            }

            Assert.Equal(2, await _replicaA.SocketCountAsync());
            Assert.Equal(2, await _replicaB.SocketCountAsync());
            // A just started may not have reached Redis yet when its first clients connect: their entries are written once it has.
            foreach (var client in clients)
            {
                await c.WaitForLookupAsync(client.Id, SessionLookupStatus.Found);
            }

            var answers = await Task.WhenAll(clients.Select((client, i) => Predictions.PostAsync(c.Http, "tokens",
                new { question = $"q{i}", socketIOClientId = client.Id, overrideConfig = new { count = 500 } })));

            Assert.All(answers, answer => Assert.Equal(HttpStatusCode.OK, answer.Status));
            for (var i = 0; i < clients.Count; i++)
            {
                await clients[i].Events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
                Assert.Equal(Enumerable.Range(0, 500).Select(t => $"q{i}:{t}"),
                    clients[i].Events.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()));
            }
        }
        finally
        {
            await Task.WhenAll(clients.Select(client => client.Connection.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task A_killed_instance_s_sessions_are_no_longer_found_and_its_clients_stream_again_from_another()
    {
        await using var survivor = await StartGatewayAsync();
        await using var doomed = await GatewayProcess.StartAsync(Settings()!.ToDictionary(kv => kv.Key, kv => kv.Value!));
        var events = new EventRecorder();
        var connection = HubClients.Create(doomed.HubUrl);
        events.Listen(connection, "token", "end");
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        await survivor.WaitForLookupAsync(id, SessionLookupStatus.Found);

        await doomed.KillAsync(); // no goodbye: its entries stay in Redis, its liveness lapses
        await connection.DisposeAsync();

        await survivor.WaitForLookupAsync(id, SessionLookupStatus.NotFound);
        var (again, againEvents, againId) = await ConnectAsync(survivor);
        await using var _ = again;
        await Predictions.PostAsync(survivor.Http, "echo-question", new { question = "moved", socketIOClientId = againId });
        await againEvents.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("moved", againEvents.Snapshot()[0].Args[0].GetString());
    }

    [Fact]
    public async Task After_Redis_restarts_mid_stream_later_predictions_stream_across_instances()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var (connection, events, id) = await ConnectAsync(a);
        await using var _ = connection;
        // A just started may not have reached Redis yet when the client connects: its entry is written once it has.
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found);
        var streaming = Predictions.PostAsync(b.Http, "tokens", new { question = "r", socketIOClientId = id, overrideConfig = new { count = 400, rate = 200 } });
        await events.WaitForAsync(e => e.Any(x => x.Name == "token"), Timeout);

        await _redis.RestartAsync(); // comes back empty: no persistence

        Assert.Equal(HttpStatusCode.OK, (await streaming).Status); // the stream in flight is not Redis's business
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(400, events.Snapshot().Count(e => e.Name == "token"));
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found); // written again by A
        var before = events.Snapshot().Count;
        await Predictions.PostAsync(b.Http, "echo-question", new { question = "after restart", socketIOClientId = id });
        await events.WaitForAsync(e => e.Skip(before).Any(x => x.Name == "end"), Timeout);
        Assert.Equal("after restart", events.Snapshot()[before].Args[0].GetString());
    }

    [Fact]
    public async Task Sessions_of_a_replica_that_goes_away_move_to_another_and_stream_again()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var first = await ConnectAsync(a);
        var second = await ConnectAsync(a);
        await using var _ = first.Connection;
        await using var __ = second.Connection;
        Assert.Equal(1, await _replicaA.SocketCountAsync());

        await _replicaA.DisposeAsync(); // the replica's process is gone
        _replicaA = await TestUpstream.StartAsync(); // (a fresh one at another port, for DisposeAsync only)

        await Task.WhenAny(
            first.Events.WaitForEventAsync("gateway:upstream-restored", Timeout),
            second.Events.WaitForEventAsync("gateway:upstream-restored", Timeout));
        Assert.Equal(2, await _replicaB.SocketCountAsync());
        Assert.Single(new[] { first, second }, s => s.Events.Snapshot().Any(e => e.Name == "gateway:upstream-lost"));
        foreach (var (_, events, id) in new[] { first, second })
        {
            // The moved session's new place reaches Redis just after its socket connects: B may still read the old one for a moment.
            await SharedRedis.WaitUntilAsync(async () => (await b.FindAsync(id)).Location.Destination == _replicaB.BaseUrl,
                () => $"instance B to see {id} on the remaining replica");
            var before = events.Snapshot().Count;
            var (status, _) = await Predictions.PostAsync(b.Http, "echo-question", new { question = id, socketIOClientId = id });
            Assert.Equal(HttpStatusCode.OK, status);
            await events.WaitForAsync(e => e.Skip(before).Any(x => x.Name == "end"), Timeout);
            Assert.Equal(id, events.Snapshot().Skip(before).First(x => x.Name == "token").Args[0].GetString());
        }
    }

    [Fact]
    public async Task With_Redis_down_at_start_an_instance_still_serves_its_own_connections_and_REST()
    {
        var closedPort = "127.0.0.1:1,connectTimeout=200";
        await using var lonely = await GatewayHost.StartAsync(_replicaA.BaseUrl, Settings(closedPort));

        var (connection, events, id) = await ConnectAsync(lonely);
        await using var _ = connection;
        var (status, answer) = await Predictions.PostAsync(lonely.Http, "echo-question", new { question = "alone", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("alone", answer.GetProperty("text").GetString());
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("alone", events.Snapshot()[0].Args[0].GetString());
    }

    private static Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAsync(GatewayHost gateway) =>
        HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end", "gateway:upstream-lost", "gateway:upstream-restored");
}
