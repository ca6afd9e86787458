using TromAi.Gateway.Bench.Streams;

namespace TromAi.Gateway.Bench.Clients;

/// <summary>
/// One client session on either path: a Socket.IO client on the upstream (direct) or a SignalR connection to the
/// gateway (bridged). Both feed the same three handlers, so whatever the bench measures differs only by path.
/// </summary>
internal abstract class BenchSession : IAsyncDisposable
{
    private StreamTally? _stream;
    private long _strayEvents;
    private volatile string? _closedReason;

    /// <summary>What to send as <c>socketIOClientId</c> on this session's path.</summary>
    public abstract string SocketIOClientId { get; }

    /// <summary>From the start of the connect call until the session could receive its first event.</summary>
    public TimeSpan ConnectTime { get; protected set; }

    /// <summary>Why the session closed, or null while it is open.</summary>
    public string? ClosedReason => _closedReason;

    /// <summary>Events that arrived while no stream was expected.</summary>
    public long StrayEvents => Interlocked.Read(ref _strayEvents);

    /// <summary>Routes the next stream's events to <paramref name="stream"/>; null stops counting.</summary>
    public void Expect(StreamTally? stream) => Volatile.Write(ref _stream, stream);

    // The handlers below run on the client's receive loop, one event at a time: they take the time first and
    // never block, so a measurement is not delayed by the bookkeeping of the one before it.
    protected void OnStart()
    {
        if (Volatile.Read(ref _stream) is { } stream)
        {
            stream.OnStart();
        }
        else
        {
            Interlocked.Increment(ref _strayEvents);
        }
    }

    protected void OnToken(string token)
    {
        var receivedAt = BenchClock.NowEpochMs();
        if (Volatile.Read(ref _stream) is { } stream)
        {
            stream.OnToken(token, receivedAt);
        }
        else
        {
            Interlocked.Increment(ref _strayEvents);
        }
    }

    protected void OnEnd()
    {
        var receivedAt = BenchClock.NowEpochMs();
        if (Volatile.Read(ref _stream) is { } stream)
        {
            stream.OnEnd(receivedAt);
        }
        else
        {
            Interlocked.Increment(ref _strayEvents);
        }
    }

    protected void OnClosed(string reason) => _closedReason ??= reason;

    public abstract ValueTask DisposeAsync();
}
