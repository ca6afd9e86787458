namespace TromAi.Gateway.Upstream;

/// <summary>
/// One connected Socket.IO socket of an <see cref="UpstreamSession"/>, on either transport. It hands
/// every event to the session's <see cref="IUpstreamListener"/>, in wire order, and reports its own end
/// once, after its last event, to the callback it was opened with.
/// </summary>
internal interface IUpstreamConnection : IAsyncDisposable
{
    /// <summary>The upstream's id for this socket (TROM.AI's <c>socketIOClientId</c>).</summary>
    string SocketId { get; }

    /// <summary>Why it ended, once it has; null while it is connected.</summary>
    string? ClosedReason { get; }

    /// <summary>
    /// Completes with true once every event the upstream emitted to this socket before the call has
    /// reached the listener; false at once when the transport cannot tell.
    /// </summary>
    /// <exception cref="System.Net.WebSockets.WebSocketException">The socket ended before the barrier came back.</exception>
    Task<bool> FlushAsync(CancellationToken cancellationToken);
}
