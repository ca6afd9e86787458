using Microsoft.Extensions.Options;
using Microsoft.IO;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// The prediction body bytes this instance holds in memory at once, across all requests
/// (<c>Gateway:Proxy:MaxBufferedBodyBytes</c>). A body that would pass it is refused with 503 and
/// <c>Retry-After</c> instead of taking the memory, so clients cannot size the instance's memory.
/// The buffers come from one pool (Microsoft's RecyclableMemoryStream) that keeps at most
/// <see cref="IdlePoolBytes"/> between bursts; the rest goes back to the runtime.
/// </summary>
internal sealed class BodyBudget
{
    /// <summary>Buffer block size, and the step in which reservations grow. Below the large object heap's 85 KB.</summary>
    public const int Step = 64 * 1024;

    /// <summary>Idle pooled memory kept for the next burst, at most.</summary>
    public const long IdlePoolBytes = 16 * 1024 * 1024;

    private readonly RecyclableMemoryStreamManager _pool;
    private long _inFlight;
    private long _peak;

    public BodyBudget(IOptions<GatewayOptions> options)
    {
        Limit = options.Value.Proxy.MaxBufferedBodyBytes;
        _pool = new RecyclableMemoryStreamManager(new RecyclableMemoryStreamManager.Options
        {
            BlockSize = Step,
            MaximumSmallPoolFreeBytes = Math.Min(Limit, IdlePoolBytes),
            // Large buffers are only made by GetBuffer/ToArray, which the proxy never calls.
            MaximumLargePoolFreeBytes = Step,
            ThrowExceptionOnToArray = true,
        });
    }

    public long Limit { get; }

    /// <summary>Bytes reserved by bodies being read or forwarded now.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>The most <see cref="InFlight"/> has been since the start: never above <see cref="Limit"/>.</summary>
    public long Peak => Interlocked.Read(ref _peak);

    /// <summary>An empty buffer for one request's body; it reserves as it grows and releases all when disposed.</summary>
    public BufferedBody Open() => new(this, _pool.GetStream("prediction body"));

    internal bool TryReserve(long bytes)
    {
        var current = Interlocked.Read(ref _inFlight);
        while (true)
        {
            var wanted = current + bytes;
            if (wanted > Limit)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _inFlight, wanted, current);
            if (seen == current)
            {
                var peak = Interlocked.Read(ref _peak);
                while (wanted > peak && Interlocked.CompareExchange(ref _peak, wanted, peak) is var before && before != peak)
                {
                    peak = before;
                }

                return true;
            }

            current = seen;
        }
    }

    internal void Release(long bytes) => Interlocked.Add(ref _inFlight, -bytes);
}
