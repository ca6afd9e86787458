using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The TROM.AI replicas, and how many of this instance's sessions each holds. A new session goes to
/// the least loaded replica; a session that lost its replica tries another one first.
/// </summary>
internal sealed class UpstreamDestinations
{
    private readonly Uri[] _replicas;
    private readonly int[] _sessions;
    private readonly Lock _gate = new();
    private int _next;

    public UpstreamDestinations(IOptions<GatewayOptions> options)
    {
        _replicas = [.. options.Value.Upstream.Replicas];
        _sessions = new int[_replicas.Length];
    }

    public IReadOnlyList<Uri> Replicas => _replicas;

    /// <summary>Takes a place on the least loaded replica, other than <paramref name="avoid"/> when there is a choice.</summary>
    public Uri Acquire(Uri? avoid = null)
    {
        lock (_gate)
        {
            var best = -1;
            // Start the scan at a rotating index, so equally loaded replicas take turns.
            for (var n = 0; n < _replicas.Length; n++)
            {
                var i = (_next + n) % _replicas.Length;
                if (_replicas.Length > 1 && _replicas[i] == avoid)
                {
                    continue;
                }

                if (best < 0 || _sessions[i] < _sessions[best])
                {
                    best = i;
                }
            }

            _next = (_next + 1) % _replicas.Length;
            _sessions[best]++;
            return _replicas[best];
        }
    }

    /// <summary>The next replica in turn, for a one-off request (an SSE prediction) that holds no session.</summary>
    public Uri Next()
    {
        lock (_gate)
        {
            _next = (_next + 1) % _replicas.Length;
            return _replicas[_next];
        }
    }

    public void Release(Uri replica)
    {
        lock (_gate)
        {
            var i = Array.IndexOf(_replicas, replica);
            if (i >= 0 && _sessions[i] > 0)
            {
                _sessions[i]--;
            }
        }
    }
}
