using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// Several instances of a small hub on real Kestrel, sharing a real Redis through the backplane, with .NET clients
/// connected to each: what one client sends reaches exactly the clients it names, whichever instance they are on.
/// </summary>
public sealed class RedisHubLifetimeManagerTests(RedisServer redis) : IClassFixture<RedisServer>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Every_kind_of_send_reaches_exactly_its_targets_once_across_three_instances()
    {
        await using var cluster = await Cluster.StartAsync(redis.Configuration, instances: 3);
        var (a, b, c) = (cluster[0], cluster[1], cluster[2]);
        var ann1 = await cluster.ConnectAsync(a, "ann1", user: "ann");
        var bob1 = await cluster.ConnectAsync(a, "bob1", user: "bob");
        var ann2 = await cluster.ConnectAsync(b, "ann2", user: "ann");
        var cid = await cluster.ConnectAsync(b, "cid", user: "cid");
        var bob2 = await cluster.ConnectAsync(c, "bob2", user: "bob");
        Client[] everyone = [ann1, bob1, ann2, cid, bob2];
        foreach (var client in new[] { ann1, ann2, bob2 })
        {
            await client.Connection.InvokeAsync("JoinGroup", "red");
        }

        foreach (var client in new[] { bob1, cid })
        {
            await client.Connection.InvokeAsync("JoinGroup", "blue");
        }

        var sends = new Sends(everyone);
        await sends.SendAsync(ann1, "ToAll", ["all"], everyone);
        await sends.SendAsync(ann2, "ToOthers", ["others"], [ann1, bob1, cid, bob2]);
        await sends.SendAsync(bob2, "ToAllExcept", [new[] { bob1.Id, cid.Id }, "all-except"], [ann1, ann2, bob2]);
        await sends.SendAsync(ann1, "ToConnection", [cid.Id, "remote connection"], [cid]);
        await sends.SendAsync(ann1, "ToConnection", [bob1.Id, "local connection"], [bob1]);
        await sends.SendAsync(bob2, "ToConnections", [new[] { ann1.Id, cid.Id, bob2.Id }, "connections"], [ann1, cid, bob2]);
        await sends.SendAsync(bob1, "ToGroup", ["red", "group"], [ann1, ann2, bob2]);
        await sends.SendAsync(cid, "ToGroups", [new[] { "red", "blue" }, "groups"], everyone);
        await sends.SendAsync(bob2, "ToGroupExcept", ["red", new[] { ann2.Id }, "group-except"], [ann1, bob2]);
        await sends.SendAsync(ann2, "ToOthersInGroup", ["red", "others-in-group"], [ann1, bob2]);
        await sends.SendAsync(ann1, "ToUser", ["ann", "user"], [ann1, ann2]);
        await sends.SendAsync(cid, "ToUser", ["bob", "user on two other instances"], [bob1, bob2]);
        await sends.SendAsync(bob2, "ToUsers", [new[] { "ann", "cid" }, "users"], [ann1, ann2, cid]);

        sends.AssertEachClientReceivedExactlyItsMessages();
    }

    [Fact]
    public async Task Group_change_for_a_connection_on_another_instance_is_acknowledged_after_it_takes_effect()
    {
        await using var cluster = await Cluster.StartAsync(redis.Configuration, instances: 3);
        var asker = await cluster.ConnectAsync(cluster[0], "asker");
        var member = await cluster.ConnectAsync(cluster[1], "member");
        var sender = await cluster.ConnectAsync(cluster[2], "sender");
        var sends = new Sends([asker, member, sender]);

        // No wait between the change and the send: the change returns once the other instance has made it.
        await asker.Connection.InvokeAsync("AddToGroup", member.Id, "green");
        await sends.SendAsync(sender, "ToGroup", ["green", "joined"], [member]);

        await asker.Connection.InvokeAsync("RemoveFromGroup", member.Id, "green");
        await sends.SendAsync(sender, "ToGroup", ["green", "left"], []);

        await asker.Connection.InvokeAsync("AddToGroup", member.Id, "green");
        await sends.SendAsync(sender, "ToGroup", ["green", "joined again"], [member]);

        sends.AssertEachClientReceivedExactlyItsMessages();
    }

    [Fact]
    public async Task Group_change_for_a_connection_whose_instance_is_gone_fails_after_the_ack_timeout_with_a_clear_error()
    {
        await using var cluster = await Cluster.StartAsync(redis.Configuration, instances: 2, operationTimeout: TimeSpan.FromSeconds(1));
        var asker = await cluster.ConnectAsync(cluster[0], "asker");
        var member = await cluster.ConnectAsync(cluster[1], "member");
        await cluster.StopAsync(1);

        var elapsed = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<HubException>(() => asker.Connection.InvokeAsync("AddToGroup", member.Id, "green"));

        Assert.Contains($"Adding connection '{member.Id}' to group 'green' was not acknowledged within 1000 ms (Gateway:Redis:OperationTimeout)", error.Message);
        Assert.InRange(elapsed.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Client_result_comes_back_from_a_connection_on_this_or_another_instance()
    {
        await using var cluster = await Cluster.StartAsync(redis.Configuration, instances: 2);
        var asker = await cluster.ConnectAsync(cluster[0], "asker");
        var local = await cluster.ConnectAsync(cluster[0], "local");
        var remote = await cluster.ConnectAsync(cluster[1], "remote");
        local.Connection.On("AddOne", (int value) => value + 1);
        remote.Connection.On("AddOne", (int value) => value + 100);

        Assert.Equal(42, await asker.Connection.InvokeAsync<int>("AskAddOne", local.Id, 41));
        Assert.Equal(141, await asker.Connection.InvokeAsync<int>("AskAddOne", remote.Id, 41));
        var error = await Assert.ThrowsAsync<HubException>(() => asker.Connection.InvokeAsync<int>("AskAddOne", "no-such-connection", 41));
        Assert.Contains("Invoking 'AddOne' on connection 'no-such-connection' failed: no gateway instance holds that connection.", error.Message);
    }

    [Fact]
    public async Task With_Redis_down_from_the_start_an_instance_serves_its_own_connections_and_reaches_the_others_once_Redis_starts()
    {
        await using var lateRedis = new RedisServer();
        await using var cluster = await Cluster.StartAsync(lateRedis.Configuration, instances: 2, waitForRedis: false);
        var here1 = await cluster.ConnectAsync(cluster[0], "here1");
        var here2 = await cluster.ConnectAsync(cluster[0], "here2");
        var there = await cluster.ConnectAsync(cluster[1], "there");
        await here1.Connection.InvokeAsync("JoinGroup", "g");
        await here2.Connection.InvokeAsync("JoinGroup", "g");
        var sends = new Sends([here1, here2, there]);

        // Local delivery does not need Redis; what is meant for the other instance is dropped, and the send still succeeds.
        await sends.SendAsync(here1, "ToAll", ["all while down"], [here1, here2], fenceTargets: [here1, here2]);
        await sends.SendAsync(here2, "ToGroup", ["g", "group while down"], [here1, here2], fenceTargets: [here1, here2]);
        // What only the other instance can do fails at once, saying why.
        var groupError = await Assert.ThrowsAsync<HubException>(() => here1.Connection.InvokeAsync("AddToGroup", there.Id, "g"));
        Assert.Contains($"Adding connection '{there.Id}' to group 'g' failed: the connection is not on this instance, and Redis", groupError.Message);
        var sendError = await Assert.ThrowsAsync<HubException>(() => here1.Connection.InvokeAsync("ToConnection", there.Id, "lost"));
        Assert.Contains($"Sending 'message' to connection '{there.Id}' failed: the connection is not on this instance, and Redis", sendError.Message);

        await lateRedis.StartAsync();
        await cluster.BackplanesConnectedAsync();

        await there.Connection.InvokeAsync("JoinGroup", "g");
        await sends.SendAsync(here1, "ToAll", ["all after start"], [here1, here2, there]);
        await sends.SendAsync(here2, "ToGroup", ["g", "group after start"], [here1, here2, there]);
        await sends.SendAsync(here1, "ToConnection", [there.Id, "connection after start"], [there]);
        await here1.Connection.InvokeAsync("RemoveFromGroup", there.Id, "g");
        await sends.SendAsync(here2, "ToGroup", ["g", "group after leaving"], [here1, here2]);

        sends.AssertEachClientReceivedExactlyItsMessages();
    }

    [Fact]
    public async Task Redis_restart_under_traffic_loses_no_local_message_and_the_other_instances_are_reached_again_within_seconds()
    {
        await using var ownRedis = new RedisServer();
        await ownRedis.StartAsync();
        await using var cluster = await Cluster.StartAsync(ownRedis.Configuration, instances: 3);
        var sender = await cluster.ConnectAsync(cluster[0], "sender");
        var local = await cluster.ConnectAsync(cluster[0], "local");
        var remote1 = await cluster.ConnectAsync(cluster[1], "remote1");
        var remote2 = await cluster.ConnectAsync(cluster[2], "remote2");
        await remote1.Connection.InvokeAsync("JoinGroup", "g");

        using var stopTraffic = new CancellationTokenSource();
        var sent = 0;
        var traffic = Task.Run(async () =>
        {
            while (!stopTraffic.IsCancellationRequested)
            {
                await sender.Connection.InvokeAsync("ToAll", $"t{sent}");
                sent++;
            }
        });

        await local.Events.WaitForAsync(received => received.Count >= 50, Timeout);
        var reconnected = cluster.NextBackplaneConnectionsAsync();
        await ownRedis.RestartAsync();
        await reconnected.WaitAsync(Timeout);
        var sentBeforeReconnected = Volatile.Read(ref sent);
        await remote2.Events.WaitForAsync(received => received.Count > 0 && Index(received[^1]) > sentBeforeReconnected, Timeout);
        await stopTraffic.CancelAsync();
        await traffic; // a send that failed would throw here
        var sends = await Sends.AfterFenceAsync(sender, [sender, local, remote1, remote2]);

        // The instance's own connection got every message, once, in order, Redis or not.
        Assert.Equal(Enumerable.Range(0, sent).Select(i => $"t{i}"), Traffic(local));
        // The others got what was sent while Redis was up: in order, never twice.
        foreach (var remote in new[] { remote1, remote2 })
        {
            var indexes = Traffic(remote).Select(text => int.Parse(text[1..])).ToList();
            Assert.Equal(indexes.Order().Distinct(), indexes);
        }

        // Group and connection subscriptions made before the restart are back too.
        await sends.SendAsync(sender, "ToGroup", ["g", "group after restart"], [remote1]);
        await sends.SendAsync(sender, "ToConnection", [remote2.Id, "connection after restart"], [remote2]);
        sends.AssertEachClientReceivedExactlyItsMessages();

        static int Index(RecordedEvent message) => int.Parse(message.Args[0].GetString()![1..]);
        static IEnumerable<string> Traffic(Client client) => Texts(client).Where(text => text.StartsWith('t'));
    }

    private static IEnumerable<string> Texts(Client client) =>
        client.Events.Snapshot().Select(message => message.Args[0].GetString()!);

    /// <summary>A test's hub: each method is one thing a hub does with its clients.</summary>
    public sealed class EchoHub : Hub
    {
        public string ConnectionId() => Context.ConnectionId;

        public Task JoinGroup(string group) => Groups.AddToGroupAsync(Context.ConnectionId, group);

        public Task AddToGroup(string connectionId, string group) => Groups.AddToGroupAsync(connectionId, group);

        public Task RemoveFromGroup(string connectionId, string group) => Groups.RemoveFromGroupAsync(connectionId, group);

        public Task ToAll(string text) => Clients.All.SendAsync("message", text);

        public Task ToOthers(string text) => Clients.Others.SendAsync("message", text);

        public Task ToAllExcept(string[] excluded, string text) => Clients.AllExcept(excluded).SendAsync("message", text);

        public Task ToConnection(string connectionId, string text) => Clients.Client(connectionId).SendAsync("message", text);

        public Task ToConnections(string[] connectionIds, string text) => Clients.Clients(connectionIds).SendAsync("message", text);

        public Task ToGroup(string group, string text) => Clients.Group(group).SendAsync("message", text);

        public Task ToGroups(string[] groups, string text) => Clients.Groups(groups).SendAsync("message", text);

        public Task ToGroupExcept(string group, string[] excluded, string text) => Clients.GroupExcept(group, excluded).SendAsync("message", text);

        public Task ToOthersInGroup(string group, string text) => Clients.OthersInGroup(group).SendAsync("message", text);

        public Task ToUser(string user, string text) => Clients.User(user).SendAsync("message", text);

        public Task ToUsers(string[] users, string text) => Clients.Users(users).SendAsync("message", text);

        public Task<int> AskAddOne(string connectionId, int value) =>
            Clients.Client(connectionId).InvokeAsync<int>("AddOne", value, Context.ConnectionAborted);
    }

    /// <summary>The user of a connection is its <c>?user=</c> query value.</summary>
    private sealed class QueryUserIdProvider : IUserIdProvider
    {
        public string? GetUserId(HubConnectionContext connection) =>
            connection.GetHttpContext()?.Request.Query["user"] is { Count: > 0 } user ? user.ToString() : null;
    }

    private sealed record Client(string Name, HubConnection Connection, EventRecorder Events, string Id)
    {
        public override string ToString() => Name;
    }

    /// <summary>
    /// Sends through the hub and records what each client should receive. Every send is followed by a fence from
    /// the same client to all: a client that has the fence has everything sent before it, so a message that is
    /// missing, doubled or misdelivered shows without waiting for time to pass.
    /// </summary>
    private sealed class Sends(Client[] clients)
    {
        private readonly Dictionary<Client, List<string>> _expected = clients.ToDictionary(client => client, _ => new List<string>());
        // What each client had received before these sends, which the assertion leaves out.
        private readonly Dictionary<Client, int> _before = clients.ToDictionary(client => client, client => client.Events.Snapshot().Count);
        private int _fences;

        /// <summary>Starts recording after a fence from <paramref name="sender"/>, so messages still on their way do not count.</summary>
        public static async Task<Sends> AfterFenceAsync(Client sender, Client[] clients)
        {
            await sender.Connection.InvokeAsync("ToAll", "start fence");
            foreach (var client in clients)
            {
                await client.Events.WaitForAsync(received => received.Any(message => message.Args[0].GetString() == "start fence"), Timeout);
            }

            return new Sends(clients);
        }

        public async Task SendAsync(Client sender, string method, object[] args, Client[] targets, Client[]? fenceTargets = null)
        {
            await sender.Connection.InvokeCoreAsync(method, args);
            foreach (var target in targets)
            {
                _expected[target].Add((string)args[^1]);
            }

            var fence = $"fence {++_fences}";
            await sender.Connection.InvokeAsync("ToAll", fence);
            foreach (var client in fenceTargets ?? clients)
            {
                _expected[client].Add(fence);
                await client.Events.WaitForAsync(received => received.Any(message => message.Args[0].GetString() == fence), Timeout);
            }
        }

        public void AssertEachClientReceivedExactlyItsMessages()
        {
            foreach (var (client, expected) in _expected)
            {
                var received = Texts(client).Skip(_before[client]).ToList();
                Assert.True(expected.SequenceEqual(received), $"{client} received [{string.Join(", ", received)}], expected [{string.Join(", ", expected)}].");
            }
        }
    }

    /// <summary>Instances of <see cref="EchoHub"/> on Kestrel sharing one Redis, and the clients connected to them.</summary>
    private sealed class Cluster : IAsyncDisposable
    {
        private readonly List<WebApplication?> _instances = [];
        private readonly List<HubConnection> _connections = [];

        public WebApplication this[int index] => _instances[index] ?? throw new InvalidOperationException($"Instance {index} was stopped.");

        public static async Task<Cluster> StartAsync(string redisConfiguration, int instances, TimeSpan? operationTimeout = null, bool waitForRedis = true)
        {
            var cluster = new Cluster();
            // Its own channels: hubs of other tests on the same Redis stay out of this one.
            var keyPrefix = "test-" + Guid.NewGuid().ToString("N")[..8];
            for (var i = 0; i < instances; i++)
            {
                cluster._instances.Add(await StartInstanceAsync(redisConfiguration, keyPrefix, operationTimeout ?? TimeSpan.FromSeconds(2)));
            }

            if (waitForRedis)
            {
                await cluster.BackplanesConnectedAsync();
            }

            return cluster;
        }

        public async Task<Client> ConnectAsync(WebApplication instance, string name, string? user = null)
        {
            var url = new Uri(instance.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First()
                + "/hubs/echo" + (user is null ? "" : "?user=" + Uri.EscapeDataString(user)));
            var events = new EventRecorder();
            var connection = HubClients.Create(url);
            events.Listen(connection, "message");
            await connection.StartAsync().WaitAsync(Timeout);
            _connections.Add(connection);
            return new Client(name, connection, events, await connection.InvokeAsync<string>("ConnectionId"));
        }

        /// <summary>Waits until every running instance's backplane is connected to Redis.</summary>
        public Task BackplanesConnectedAsync() =>
            Task.WhenAll(Running().Select(backplane =>
            {
                var next = NextConnection(backplane);
                return backplane.IsBackplaneConnected ? Task.CompletedTask : next;
            })).WaitAsync(Timeout);

        /// <summary>Completes when every running instance's backplane has connected again after now.</summary>
        public Task NextBackplaneConnectionsAsync() => Task.WhenAll(Running().Select(NextConnection));

        /// <summary>Stops an instance, as when its pod goes away: its connections close.</summary>
        public async Task StopAsync(int index)
        {
            var instance = this[index];
            _instances[index] = null;
            await instance.StopAsync();
            await instance.DisposeAsync();
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var connection in _connections)
            {
                await connection.DisposeAsync();
            }

            foreach (var instance in _instances)
            {
                if (instance is not null)
                {
                    await instance.StopAsync();
                    await instance.DisposeAsync();
                }
            }
        }

        private IEnumerable<RedisHubLifetimeManager<EchoHub>> Running() =>
            _instances.OfType<WebApplication>().Select(instance => (RedisHubLifetimeManager<EchoHub>)instance.Services.GetRequiredService<HubLifetimeManager<EchoHub>>());

        private static Task NextConnection(RedisHubLifetimeManager<EchoHub> backplane)
        {
            var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            backplane.BackplaneConnected += () => connected.TrySetResult();
            return connected.Task;
        }

        private static async Task<WebApplication> StartInstanceAsync(string redisConfiguration, string keyPrefix, TimeSpan operationTimeout)
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
            builder.Services.Configure<GatewayOptions>(options =>
            {
                options.Redis.Configuration = redisConfiguration;
                options.Redis.KeyPrefix = keyPrefix;
                options.Redis.OperationTimeout = operationTimeout;
            });
            // Detailed errors: a client sees why a hub method failed, as these tests assert.
            builder.Services.AddSignalR(options => options.EnableDetailedErrors = true);
            builder.Services.AddRedisBackplane();
            builder.Services.AddSingleton<IUserIdProvider, QueryUserIdProvider>();

            var app = builder.Build();
            app.MapHub<EchoHub>("/hubs/echo");
            await app.StartAsync();
            // Created now rather than by the first connection, so its Redis connection is under way from the start.
            app.Services.GetRequiredService<HubLifetimeManager<EchoHub>>();
            return app;
        }
    }
}
