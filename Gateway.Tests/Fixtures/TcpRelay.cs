using System.Net;
using System.Net.Sockets;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// A TCP relay between clients and a server on this machine, that can cut every connection through
/// it at once (a network blip, as a client on a train sees one), or stop passing on what the server
/// sends (a client that stops reading).
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stopped = new();
    private readonly Lock _gate = new();
    private readonly List<Socket> _open = [];
    private readonly Task _accepting;
    private TaskCompletionSource? _resumeDelivery; // non-null while paused

    public TcpRelay(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted { get; private set; }

    /// <summary><paramref name="url"/> with this relay's port: the same server, reached through the relay.</summary>
    public Uri Through(Uri url) => new UriBuilder(url) { Port = Port }.Uri;

    /// <summary>
    /// Stops reading what the server sends, as a client that stops reading does: the server's sends back up in
    /// its TCP buffers. A chunk already read (at most 16 KB a connection) is held back too; what the clients send
    /// still passes.
    /// </summary>
    public void PauseDelivery() =>
        Interlocked.CompareExchange(ref _resumeDelivery, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    public void ResumeDelivery() => Interlocked.Exchange(ref _resumeDelivery, null)?.TrySetResult();

    /// <summary>Resets every connection through the relay (RST, no goodbye); new ones are accepted again.</summary>
    public void Cut()
    {
        lock (_gate)
        {
            foreach (var socket in _open)
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Close();
                }
                catch (ObjectDisposedException)
                {
                    // Its pair was cut already and closed it.
                }
            }

            _open.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stopped.IsCancellationRequested)
        {
            Socket client, server;
            try
            {
                client = await _listener.AcceptSocketAsync(_stopped.Token);
                server = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(IPAddress.Loopback, _target, _stopped.Token);
            }
            catch (Exception) when (_stopped.IsCancellationRequested)
            {
                return;
            }

            lock (_gate)
            {
                Accepted++;
                _open.Add(client);
                _open.Add(server);
            }

            _ = PumpAsync(client, server, toClient: false);
            _ = PumpAsync(server, client, toClient: true);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool toClient)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer)) > 0)
            {
                while (toClient && Volatile.Read(ref _resumeDelivery) is { } paused)
                {
                    await paused.Task;
                }

                await to.SendAsync(buffer.AsMemory(0, read));
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // One side was cut: so is the other.
            to.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopped.CancelAsync();
        ResumeDelivery();
        _listener.Stop();
        Cut();
        await _accepting;
    }
}
