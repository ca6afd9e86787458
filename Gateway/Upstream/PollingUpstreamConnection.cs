using SocketIOClient;
using SocketIOClient.Transport;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The long-polling transport (<c>Gateway:Upstream:Transport=Polling</c>, for a proxy in between that
/// passes no WebSocket), and the one place SocketIOClient 3.0.6 is still used: the gateway's own client
/// (<see cref="SocketIOWire.SocketIOConnection"/>) speaks WebSocket only, and polling is rare enough not to
/// be worth a second Engine.IO transport of our own. What polling cannot do, as before: hold the upstream
/// back (no backpressure: the relay cuts a client that falls behind), tell when every event has arrived
/// (no barrier), and relay binary events (SocketIOClient hands them to no catch-all handler).
/// </summary>
internal sealed class PollingUpstreamConnection : IUpstreamConnection
{
    // SocketIOClient's DisconnectAsync can hang for minutes after a network cut.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly SocketIO _socket;
    private volatile string? _closedReason;

    private PollingUpstreamConnection(SocketIO socket) => _socket = socket;

    public string SocketId => _socket.Id ?? "";

    public string? ClosedReason => _closedReason;

    /// <summary>Completes once SocketIOClient reports the socket connected.</summary>
    /// <param name="onClosed">Called once when the connected socket ends.</param>
    public static async Task<PollingUpstreamConnection> ConnectAsync(
        Uri destination, IUpstreamListener listener, Action<IUpstreamConnection, string> onClosed, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        var socket = new SocketIO(destination, new SocketIOOptions
        {
            Transport = TransportProtocol.Polling,
            Reconnection = false,
            ConnectionTimeout = connectTimeout,
        });
        var upstream = new PollingUpstreamConnection(socket);
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        socket.OnConnected += (_, _) => connected.TrySetResult();
        socket.OnError += (_, error) => connected.TrySetException(new IOException(error));
        socket.OnDisconnected += (_, reason) =>
        {
            if (connected.Task.IsCompletedSuccessfully && upstream._closedReason is null)
            {
                upstream._closedReason = reason;
                onClosed(upstream, reason);
            }
        };
        // On SocketIOClient's one receive loop, in wire order.
        socket.OnAny((name, response) => listener.OnEvent(name, UpstreamPayload.ToArguments(response)));

        try
        {
            // ConnectAsync can return before the server has accepted the socket; Id is only valid after OnConnected.
            await socket.ConnectAsync().WaitAsync(cancellationToken);
            await connected.Task.WaitAsync(cancellationToken);
            return upstream;
        }
        catch
        {
            await upstream.DisposeAsync();
            throw;
        }
    }

    public Task<bool> FlushAsync(CancellationToken cancellationToken) => Task.FromResult(false);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.Connected)
            {
                // Tells the upstream at once that the socket is gone, instead of after its ping timeout.
                await _socket.DisconnectAsync().WaitAsync(CloseTimeout);
            }
        }
        catch (Exception)
        {
            // The socket is being thrown away; a failed goodbye changes nothing.
        }
        finally
        {
            _socket.Dispose();
        }
    }
}
