using System.Diagnostics;
using SocketIOClient;
using SocketIOClient.Transport;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bench.Clients;

/// <summary>
/// The direct path: a Socket.IO client connected straight to the upstream, built exactly like the gateway's
/// upstream leg (SocketIOClient 3.0.6, WebSocket, no reconnection, and the gateway's own
/// <see cref="UpstreamWebSocket"/> under it), so the difference to the bridged path is the relay and the SignalR
/// leg. SocketIOClient's stock socket allocates two 8 KB buffers per message; in the bench process that means a
/// gen-1 collection every ~80 ms at 10k events/s, which would slow the baseline, not the gateway.
/// </summary>
internal sealed class DirectSession : BenchSession
{
    // SocketIOClient's DisconnectAsync can hang for minutes after a network cut.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly SocketIO _socket;

    private DirectSession(SocketIO socket) => _socket = socket;

    public override string SocketIOClientId => _socket.Id;

    public static async Task<DirectSession> ConnectAsync(Uri upstream, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new SocketIO(upstream, new SocketIOOptions
        {
            Transport = TransportProtocol.WebSocket,
            Reconnection = false,
            ConnectionTimeout = timeout,
        });
        socket.ClientWebSocketProvider = static () => new UpstreamWebSocket(static _ => { }); // no binary events in token streams
        var session = new DirectSession(socket);
        var begun = Stopwatch.GetTimestamp();
        var connected = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        socket.OnConnected += (_, _) => connected.TrySetResult(Stopwatch.GetElapsedTime(begun));
        socket.OnError += (_, error) => connected.TrySetException(new IOException($"Socket.IO connect to {upstream} failed: {error}"));
        socket.OnDisconnected += (_, reason) => session.OnClosed(reason);
        socket.On("start", _ => session.OnStart());
        // GetValue(i) is the element SocketIOClient already parsed, as the gateway reads it; GetValue<T> would re-serialize and parse it again.
        socket.On("token", response => session.OnToken(response.GetValue(0).GetString()!));
        socket.On("end", _ => session.OnEnd());

        try
        {
            // Ready means OnConnected: ConnectAsync may return before it, and otherwise returns only at its next
            // poll (~every 20 ms), which a client reacting to OnConnected does not wait for.
            var connecting = socket.ConnectAsync();
            if (await Task.WhenAny(connected.Task, connecting).WaitAsync(timeout, cancellationToken) == connecting)
            {
                await connecting; // a failure surfaces here
            }

            session.ConnectTime = await connected.Task.WaitAsync(timeout, cancellationToken);
            await connecting.WaitAsync(timeout, cancellationToken);
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }

        return session;
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.Connected)
            {
                await _socket.DisconnectAsync().WaitAsync(CloseTimeout);
            }
        }
        catch (Exception)
        {
            // Being thrown away; a failed goodbye changes no measurement.
        }
        finally
        {
            _socket.Dispose();
        }
    }
}
