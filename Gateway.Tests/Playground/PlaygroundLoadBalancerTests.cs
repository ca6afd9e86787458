using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Playground;

/// <summary>
/// The playground behind a load balancer without affinity, as a plain Kubernetes Service is: two gateway
/// instances on one Redis, and a relay that sends each new TCP connection to the other instance in turn.
/// A negotiated SignalR connection makes two requests that must reach one instance (negotiate, then the
/// WebSocket on a new TCP connection); the page makes one, the WebSocket, so any instance will do.
/// </summary>
public sealed class PlaygroundLoadBalancerTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private TestUpstream _upstream = null!;
    private GatewayHost _first = null!, _second = null!;
    private RoundRobinRelay _balancer = null!;

    public async Task InitializeAsync()
    {
        _redis = new RedisServer();
        await _redis.StartAsync();
        _upstream = await TestUpstream.StartAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Playground:Enabled"] = "true",
            ["Gateway:Redis:Configuration"] = _redis.Configuration,
        };
        _first = await GatewayHost.StartAsync(_upstream.BaseUrl, settings);
        _second = await GatewayHost.StartAsync(_upstream.BaseUrl, settings);
        _balancer = new RoundRobinRelay(_first.BaseUrl.Port, _second.BaseUrl.Port);
    }

    public async Task DisposeAsync()
    {
        await _balancer.DisposeAsync();
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Page_behind_a_load_balancer_without_affinity_connects_without_negotiating_and_streams_answers_both_ways()
    {
        // The spec asserts from the browser: no negotiate request, a hub WebSocket without a negotiated id,
        // and tokens in order over REST + events and over Predict.
        var result = await PlaygroundBrowser.RunAsync("balanced", _balancer.BaseUrl, _upstream.BaseUrl);

        Assert.Equal(1, result.GetProperty("hubWebSockets").GetInt32());
        // Both instances took connections of the page (the page, its files, its WebSocket, its REST calls).
        Assert.All(_balancer.Connections, connections => Assert.True(connections > 0, $"an instance took no connection: {string.Join(", ", _balancer.Connections)}"));
    }
}
