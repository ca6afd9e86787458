using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Tests.Fixtures;
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

    [Fact]
    public async Task A_flush_given_up_before_it_was_sent_does_not_take_the_barrier_of_the_next_one()
    {
        await using var upstream = await TestUpstream.StartAsync();
        var options = new UpstreamOptions { BaseUrl = upstream.BaseUrl };
        var destinations = new UpstreamDestinations(Options.Create(new GatewayOptions { Upstream = options }));
        var metrics = new GatewayMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());
        var listener = new RecordingListener();
        await using var session = new UpstreamSession(options, destinations, listener, TimeProvider.System, metrics, NullLogger.Instance);
        await session.ConnectAsync(warm: false, CancellationToken.None);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => session.FlushAsync(new CancellationToken(canceled: true)));
        await Predictions.PostAsync(upstream.Http, "echo-question", new { question = "before the barrier", socketIOClientId = session.SocketId });
        Assert.True(await session.FlushAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));

        // The barrier came back after everything the upstream emitted before it.
        Assert.Equal(["token", "end"], listener.Events);
    }

    private sealed class RecordingListener : IUpstreamListener
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _events = new();

        public IReadOnlyList<string> Events => [.. _events];

        public void OnEvent(string name, object?[] args) => _events.Enqueue(name);

        public void OnLost(string reason) => _events.Enqueue("lost");

        public void OnRestored(int attempts, TimeSpan downtime) => _events.Enqueue("restored");
    }

    private sealed class NoListener : IUpstreamListener
    {
        public void OnEvent(string name, object?[] args) { }

        public void OnLost(string reason) { }

        public void OnRestored(int attempts, TimeSpan downtime) { }
    }
}
