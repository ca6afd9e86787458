using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Security;

/// <summary>
/// The instance's counters and rate limiters for <see cref="RequestLimitsMiddleware"/>: hub
/// connections in all and per client IP, new connections per IP per second, and REST requests per
/// IP per second (token buckets, so short bursts pass).
/// </summary>
internal sealed class RequestLimits : IDisposable
{
    private readonly ConcurrentDictionary<string, int> _connectionsPerIp = new(StringComparer.Ordinal);
    private int _connections;

    public RequestLimits(IOptions<GatewayOptions> options)
    {
        Options = options.Value.Limits;
        Connects = PerIpTokenBucket(Options.ConnectsPerIpPerSecond);
        Requests = PerIpTokenBucket(Options.RequestsPerIpPerSecond);
    }

    public LimitsOptions Options { get; }

    public PartitionedRateLimiter<string> Connects { get; }

    public PartitionedRateLimiter<string> Requests { get; }

    /// <summary>Takes a connection slot for <paramref name="ip"/>; null when the instance or that IP is full, with the reason.</summary>
    public ConnectionSlot? TryOpenConnection(string ip, out LimitReason reason)
    {
        if (Interlocked.Increment(ref _connections) > Options.MaxConnections)
        {
            Interlocked.Decrement(ref _connections);
            reason = LimitReason.InstanceFull;
            return null;
        }

        if (_connectionsPerIp.AddOrUpdate(ip, 1, static (_, count) => count + 1) > Options.MaxConnectionsPerIp)
        {
            Release(ip);
            reason = LimitReason.IpFull;
            return null;
        }

        reason = default;
        return new ConnectionSlot(this, ip);
    }

    private void Release(string ip)
    {
        Interlocked.Decrement(ref _connections);
        // Remove the entry at zero, so the map does not keep every address that ever connected.
        if (_connectionsPerIp.AddOrUpdate(ip, 0, static (_, count) => count - 1) <= 0)
        {
            _connectionsPerIp.TryRemove(KeyValuePair.Create(ip, 0));
        }
    }

    private static PartitionedRateLimiter<string> PerIpTokenBucket(int perSecond) =>
        PartitionedRateLimiter.Create<string, string>(ip => RateLimitPartition.GetTokenBucketLimiter(ip, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perSecond,
            TokensPerPeriod = perSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    public void Dispose()
    {
        Connects.Dispose();
        Requests.Dispose();
    }

    internal enum LimitReason
    {
        InstanceFull,
        IpFull,
    }

    internal sealed class ConnectionSlot(RequestLimits owner, string ip) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner.Release(ip);
            }
        }
    }
}
