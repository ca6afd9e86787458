using System.Net;
using System.Net.Sockets;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// A TCP relay between clients and a server on this machine, that can cut every connection through
/// it at once: a network blip, as a client on a train sees one.
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stopped = new();
    private readonly Lock _gate = new();
    private readonly List<Socket> _open = [];
    private readonly Task _accepting;

    public TcpRelay(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted { get; private set; }

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

            _ = PumpAsync(client, server);
            _ = PumpAsync(server, client);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer)) > 0)
            {
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
        _listener.Stop();
        Cut();
        await _accepting;
    }
}
