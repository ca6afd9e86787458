using System.Net.WebSockets;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The WebSocket transport (the default): the gateway's own <see cref="SocketIOConnection"/>, which
/// reads each frame once and hands the argument bytes on as they arrived (Gateway.Bench/RESULTS.md
/// measures it against SocketIOClient 3.0.6). Events reach the session's listener on the socket's
/// receive loop, with no queue or thread hop of their own; the listener's room gates the next read.
/// A socket opened ahead of need (<see cref="WarmUpstreamSockets"/>) gets its listener when a session takes it.
/// </summary>
internal sealed class WebSocketUpstreamConnection : IUpstreamConnection, ISocketIOListener
{
    private IUpstreamListener _listener;
    private Action<IUpstreamConnection, string> _onClosed;
    private SocketIOConnection? _connection;
    private volatile string? _closedReason;

    private WebSocketUpstreamConnection(IUpstreamListener listener, Action<IUpstreamConnection, string> onClosed)
    {
        _listener = listener;
        _onClosed = onClosed;
    }

    public string SocketId => _connection?.SocketId ?? "";

    public string? ClosedReason => _closedReason;

    /// <summary>Completes at the server's CONNECT (<c>40{"sid":...}</c>): from then on TROM.AI can address the socket.</summary>
    /// <param name="onClosed">Called once, on the receive loop, after the last event, when the connected socket ends.</param>
    /// <exception cref="SocketIOClosedException">The upstream refused, closed, or answered something other than Socket.IO.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<WebSocketUpstreamConnection> ConnectAsync(
        Uri destination, IUpstreamListener listener, Action<IUpstreamConnection, string> onClosed, CancellationToken cancellationToken)
    {
        var upstream = new WebSocketUpstreamConnection(listener, onClosed);
        // The heartbeat stays on the real clock: Engine.IO's ping timeout is the network's, not the gateway's time.
        upstream._connection = await SocketIOConnection.ConnectAsync(destination, upstream, null, cancellationToken);
        return upstream;
    }

    /// <summary>
    /// Hands the socket to the session that takes it: its listener hears every event from now on, and
    /// <paramref name="onClosed"/> its end. An end that came before, on the old callback, shows in <see cref="ClosedReason"/>.
    /// </summary>
    public void Attach(IUpstreamListener listener, Action<IUpstreamConnection, string> onClosed)
    {
        Volatile.Write(ref _listener, listener);
        // Full fences on both sides: either the receive loop calls the new callback, or the taker sees ClosedReason.
        Interlocked.Exchange(ref _onClosed, onClosed);
    }

    public async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _connection!.FlushAsync(cancellationToken);
            return true;
        }
        catch (SocketIOClosedException e)
        {
            throw new WebSocketException(e.Message, e);
        }
    }

    public ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;

    void ISocketIOListener.OnEvent(string name, object?[] args) => Volatile.Read(ref _listener).OnEvent(name, args);

    void ISocketIOListener.OnEvent(string name, EventArguments args) => Volatile.Read(ref _listener).OnEvent(name, args);

    ValueTask ISocketIOListener.WaitForRoomAsync(CancellationToken cancellationToken) => Volatile.Read(ref _listener).WaitForRoomAsync(cancellationToken);

    void ISocketIOListener.OnClosed(string reason)
    {
        Interlocked.Exchange(ref _closedReason, reason);
        Volatile.Read(ref _onClosed)(this, reason);
    }
}
