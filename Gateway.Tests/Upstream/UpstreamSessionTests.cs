using Microsoft.Extensions.Logging.Abstractions;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class UpstreamSessionTests
{
    [Fact]
    public async Task Reconnect_delays_double_per_attempt_with_jitter_up_to_the_maximum()
    {
        var options = new UpstreamOptions { ReconnectInitialDelay = TimeSpan.FromMilliseconds(100), ReconnectMaxDelay = TimeSpan.FromSeconds(5) };
        await using var session = new UpstreamSession(options, new NoListener(), TimeProvider.System, NullLogger.Instance);

        for (var attempt = 1; attempt <= 12; attempt++)
        {
            var nominal = Math.Min(100 * Math.Pow(2, attempt - 1), 5000);
            var delays = Enumerable.Range(0, 200).Select(_ => session.Backoff(attempt).TotalMilliseconds).ToList();

            Assert.All(delays, d => Assert.InRange(d, nominal / 2, nominal));
            Assert.True(delays.Distinct().Count() > 100, "delays of one attempt are spread, so sessions that dropped together do not knock together");
        }
    }

    private sealed class NoListener : IUpstreamListener
    {
        public void OnEvent(string name, object?[] args) { }

        public void OnLost(string reason) { }

        public void OnRestored(int attempts, TimeSpan downtime) { }
    }
}
