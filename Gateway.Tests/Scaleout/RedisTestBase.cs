using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>Each test of a derived class gets its own real redis-server and test upstream, and gateways on both.</summary>
public abstract class RedisTestBase : IAsyncLifetime
{
    protected static readonly TimeSpan Timeout = SharedRedis.Timeout;

    protected RedisServer Redis { get; private set; } = null!;

    protected TestUpstream Upstream { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Redis = new RedisServer();
        await Redis.StartAsync();
        Upstream = await TestUpstream.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Upstream.DisposeAsync();
        await Redis.DisposeAsync();
    }

    /// <summary>A gateway instance on <paramref name="redis"/> (this test's own by default), with <paramref name="more"/> settings.</summary>
    protected Task<GatewayHost> StartGatewayAsync(IDictionary<string, string?>? more = null, RedisServer? redis = null) =>
        GatewayHost.StartAsync(Upstream.BaseUrl, GatewaySettings(more, redis));

    /// <summary>
    /// A gateway instance as its own process, on the same Redis and upstream as <see cref="StartGatewayAsync"/>'s:
    /// one that gets a real SIGTERM, or is killed outright.
    /// </summary>
    protected Task<GatewayProcess> StartGatewayProcessAsync(IDictionary<string, string?>? more = null) =>
        GatewayProcess.StartAsync(GatewaySettings(more, redis: null)
            .Where(setting => setting.Value is not null)
            .ToDictionary(setting => setting.Key, setting => setting.Value!));

    // One source for both kinds of instance, so that a process and an in-process host of a test are alike.
    private Dictionary<string, string?> GatewaySettings(IDictionary<string, string?>? more, RedisServer? redis)
    {
        var settings = SharedRedis.Settings(redis ?? Redis, more);
        settings.TryAdd("Gateway:Upstream:BaseUrl", Upstream.BaseUrl.ToString());
        return settings;
    }
}