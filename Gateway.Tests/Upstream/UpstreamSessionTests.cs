using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class UpstreamSessionTests
{
    [Fact]
    public async Task Reconnect_delays_double_per_attempt_with_jitter_up_to_the_maximum()
    {
        var options = new UpstreamOptions { ReconnectInitialDelay = TimeSpan.FromMilliseconds(100), ReconnectMaxDelay = TimeSpan.FromSeconds(5) };
        var destinations = new UpstreamDestinations(Options.Create(new GatewayOptions { Upstream = options }));
        var metrics = new GatewayMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());
        await using var session = new UpstreamSession(options, destinations, new NoListener(), TimeProvider.System, metrics, NullLogger.Instance);

        for (var attempt = 1; attempt <= 12; attempt++)
        {
            var nominal = Math.Min(100 * Math.Pow(2, attempt - 1), 5000);
            var delays = Enumerable.Range(0, 200).Select(_ => session.Backoff(attempt).TotalMilliseconds).ToList();

            Assert.All(delays, d => Assert.InRange(d, nominal / 2, nominal));
            Assert.True(delays.Distinct().Count() > 100, "delays of one attempt are spread, so sessions that dropped together do not knock together");
        }
    }

    [Fact]
    public void New_sessions_go_to_the_least_loaded_replica_and_a_lost_one_is_avoided_while_another_exists()
    {
        Uri a = new("http://replica-a:3000/"), b = new("http://replica-b:3000/");
        var destinations = new UpstreamDestinations(Options.Create(new GatewayOptions { Upstream = { Destinations = [a, b] } }));

        var first = destinations.Acquire();
        var second = destinations.Acquire();
        destinations.Release(first);
        var third = destinations.Acquire();

        Assert.NotEqual(first, second);
        Assert.Equal(first, third); // the emptier one
        Assert.Equal(b, destinations.Acquire(avoid: a));
        Assert.Equal(b, destinations.Acquire(avoid: a)); // even now that b is the busier one
    }

    private sealed class NoListener : IUpstreamListener
    {
        public void OnEvent(string name, object?[] args) { }

        public void OnLost(string reason) { }

        public void OnRestored(int attempts, TimeSpan downtime) { }
    }
}
