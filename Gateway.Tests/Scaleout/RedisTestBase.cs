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
        GatewayHost.StartAsync(Upstream.BaseUrl, SharedRedis.Settings(redis ?? Redis, more));
}
