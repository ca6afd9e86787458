using SocketIOClient;
using SocketIOClient.Transport;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bench.Readers;

/// <summary>
/// The gateway's upstream leg until it read TROM.AI with its own client: SocketIOClient 3.0.6 over a pooled
/// WebSocket (<see cref="PooledClientWebSocket"/>), each event turned into relay arguments by
/// <see cref="UpstreamPayload.ToArguments"/> (which the polling transport still uses) from an <c>OnAny</c> handler.
/// </summary>
internal sealed class SocketIOClientReader : CountingReader
{
    private readonly SocketIOClient.SocketIO _socket;

    private SocketIOClientReader(SocketIOClient.SocketIO socket) => _socket = socket;

    public override string SocketId => _socket.Id;

    public static async Task<SocketIOClientReader> ConnectAsync(Uri upstream, CancellationToken cancellationToken)
    {
        var socket = new SocketIOClient.SocketIO(upstream, new SocketIOOptions
        {
            Transport = TransportProtocol.WebSocket,
            Reconnection = false,
            ConnectionTimeout = TimeSpan.FromSeconds(10),
        });
        socket.ClientWebSocketProvider = static () => new PooledClientWebSocket();
        var reader = new SocketIOClientReader(socket);
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        socket.OnConnected += (_, _) => connected.TrySetResult();
        socket.OnError += (_, error) => connected.TrySetException(new IOException(error));
        socket.OnAny((name, response) =>
        {
            GC.KeepAlive(UpstreamPayload.ToArguments(response));
            reader.Count(name);
        });
        var connecting = socket.ConnectAsync();
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
        await connecting.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
        return reader;
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await _socket.DisconnectAsync().WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception)
        {
            // Thrown away after the run; a failed goodbye changes no measurement.
        }
        finally
        {
            _socket.Dispose();
        }
    }
}
