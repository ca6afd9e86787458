using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using Xunit.Abstractions;
using RedisServer = TromAi.Gateway.Tests.Fixtures.RedisServer;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// The session directory on its two caches: memory for an instance alone, a real redis-server for
/// several. Time is a fake one where the test must choose when heartbeats happen.
/// </summary>
public sealed class SessionDirectoryTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(1); // a third of the SessionTtl in SharedRedis.Settings
    private RedisServer _redis = null!;
    private TestUpstream _upstream = null!;
    private ConnectionMultiplexer _inspector = null!;

    public async Task InitializeAsync()
    {
        _redis = new RedisServer();
        await _redis.StartAsync();
        _upstream = await TestUpstream.StartAsync();
        _inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration + ",allowAdmin=true");
    }

    public async Task DisposeAsync()
    {
        await _inspector.DisposeAsync();
        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Alone_an_instance_finds_its_own_sessions_in_memory_and_forgets_them_when_they_end()
    {
        await using var gateway = await GatewayHost.StartAsync(_upstream.BaseUrl);
        var (connection, _, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token");

        var found = await gateway.FindAsync(id);
        var unknown = await gateway.FindAsync(SocketIOClientIds.New());

        Assert.Equal(SessionLookupStatus.Found, found.Status);
        Assert.NotNull(found.Location.SocketId);
        Assert.Equal(_upstream.BaseUrl, found.Location.Destination);
        Assert.Equal(SessionLookupStatus.NotFound, unknown.Status);
        await connection.DisposeAsync();
        await gateway.WaitForLookupAsync(id, SessionLookupStatus.NotFound);
    }

    [Fact]
    public async Task Keeping_sessions_alive_writes_to_Redis_only_the_instance_s_own_key_however_many_sessions()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await StartGatewayAsync(time);
        var clients = await ConnectAsync(gateway, 30);
        try
        {
            var writes = await KeyWritesAsync();
            var instanceKey = $"tromai-gateway:instance:{gateway.Services.GetRequiredService<SessionDirectory>().InstanceId}";

            await HeartbeatsAsync(time, writes, instanceKey, 3);

            Assert.Empty(writes.Of("tromai-gateway:session:")); // one write per session per heartbeat before
            output.WriteLine($"Writes in 3 heartbeats with 30 sessions: {writes.Describe()}");
        }
        finally
        {
            await Task.WhenAll(clients.Select(client => client.Connection.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task A_session_s_entry_is_written_again_when_it_nears_its_expiry_and_not_before()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await StartGatewayAsync(time);
        var clients = await ConnectAsync(gateway, 3);
        try
        {
            var keys = clients.Select(client => (RedisKey)$"tromai-gateway:session:{client.Id}").ToArray();
            var expiry = await _inspector.GetDatabase().KeyTimeToLiveAsync(keys[0]);
            Assert.InRange(expiry!.Value, SessionDirectory.EntryLifetime - TimeSpan.FromMinutes(1), SessionDirectory.EntryLifetime);
            var writes = await KeyWritesAsync();
            var instanceKey = $"tromai-gateway:instance:{gateway.Services.GetRequiredService<SessionDirectory>().InstanceId}";

            await HeartbeatsAsync(time, writes, instanceKey, 2);
            Assert.Empty(writes.Of("tromai-gateway:session:"));

            time.Advance(SessionDirectory.EntryLifetime / 2);
            await SharedRedis.WaitUntilAsync(() =>
            {
                time.Advance(Heartbeat); // in case the heartbeat was not yet waiting when time moved
                return Task.FromResult(keys.All(key => writes.Of(key!).Any()));
            }, () => $"every entry to be written again ({writes.Describe()})");
        }
        finally
        {
            await Task.WhenAll(clients.Select(client => client.Connection.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Entries_that_Redis_lost_without_a_disconnect_are_written_again_at_the_next_heartbeat()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await StartGatewayAsync(time);
        await using var other = await GatewayHost.StartAsync(_upstream.BaseUrl, SharedRedis.Settings(_redis));
        var (connection, _, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token");
        await using var _ = connection;
        await FoundWithHeartbeatsAsync(time, other, id);

        await _inspector.GetServers()[0].FlushAllDatabasesAsync(); // as a failover to an empty replica would
        Assert.Equal(SessionLookupStatus.NotFound, (await other.FindAsync(id)).Status);

        await FoundWithHeartbeatsAsync(time, other, id);
    }

    /// <summary>Moves time a heartbeat at a time until <paramref name="count"/> heartbeats have written the instance key.</summary>
    private static Task HeartbeatsAsync(FakeTimeProvider time, KeyWrites writes, string instanceKey, int count) =>
        SharedRedis.WaitUntilAsync(() =>
        {
            time.Advance(Heartbeat);
            return Task.FromResult(writes.Of(instanceKey).Count() >= count);
        }, () => $"{count} heartbeats ({writes.Describe()})");

    /// <summary>Asks <paramref name="other"/> until it finds the session, moving the fake-timed instance's heartbeats meanwhile (its key lives 3 real seconds).</summary>
    private static Task FoundWithHeartbeatsAsync(FakeTimeProvider time, GatewayHost other, string id) =>
        SharedRedis.WaitUntilAsync(async () =>
        {
            time.Advance(Heartbeat);
            return (await other.FindAsync(id)).Status == SessionLookupStatus.Found;
        }, () => $"instance B to find {id}");

    private Task<GatewayHost> StartGatewayAsync(TimeProvider time) =>
        GatewayHost.StartAsync(_upstream.BaseUrl, SharedRedis.Settings(_redis), services => services.AddSingleton(time));

    private static async Task<List<(HubConnection Connection, string Id)>> ConnectAsync(GatewayHost gateway, int count)
    {
        var clients = new List<(HubConnection, string)>();
        for (var i = 0; i < count; i++)
        {
            var (connection, _, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token");
            clients.Add((connection, id));
        }

        return clients;
    }

    /// <summary>Every write to a key of the gateway from now on, as Redis reports it (keyspace notifications).</summary>
    private async Task<KeyWrites> KeyWritesAsync()
    {
        await _inspector.GetServers()[0].ConfigSetAsync("notify-keyspace-events", "Kh$g");
        var writes = new KeyWrites();
        var queue = await _inspector.GetSubscriber().SubscribeAsync(RedisChannel.Pattern("__keyspace@0__:tromai-gateway:*"));
        queue.OnMessage(message => writes.Add(((string)message.Channel!)["__keyspace@0__:".Length..], (string)message.Message!));
        return writes;
    }

    private sealed class KeyWrites
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<(string Key, string Command)> _writes = new();

        public void Add(string key, string command)
        {
            if (command is "hset" or "set")
            {
                _writes.Enqueue((key, command));
            }
        }

        public IEnumerable<string> Of(string keyPrefix) => _writes.Where(write => write.Key.StartsWith(keyPrefix, StringComparison.Ordinal)).Select(write => write.Key);

        public string Describe() => string.Join(", ", _writes.GroupBy(write => write.Key).Select(group => $"{group.Key} x{group.Count()}"));
    }
}
