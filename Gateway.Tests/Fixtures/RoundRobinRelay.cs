using System.Net;
using System.Net.Sockets;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// A load balancer without affinity, as a plain Kubernetes Service is one: each new TCP connection goes
/// to the next of its targets in turn, whichever target the client's other connections went to. A
/// client that needs two requests on one instance (SignalR's negotiate, then its transport) cannot
/// count on it.
/// </summary>
public sealed class RoundRobinRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int[] _targets;
    private readonly int[] _connections;
    private readonly CancellationTokenSource _stopped = new();
    private readonly Lock _gate = new();
    private readonly List<Socket> _open = [];
    private readonly Task _accepting;

    public RoundRobinRelay(params int[] targetPorts)
    {
        _targets = targetPorts;
        _connections = new int[targetPorts.Length];
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public Uri BaseUrl => new($"http://127.0.0.1:{Port}/");

    /// <summary>How many TCP connections went to each target, in the order the targets were given.</summary>
    public IReadOnlyList<int> Connections
    {
        get
        {
            lock (_gate)
            {
                return [.. _connections];
            }
        }
    }

    private async Task AcceptAsync()
    {
        for (var next = 0; !_stopped.IsCancellationRequested; next = (next + 1) % _targets.Length)
        {
            Socket? client = null;
            Socket server;
            try
            {
                client = await _listener.AcceptSocketAsync(_stopped.Token);
                server = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(IPAddress.Loopback, _targets[next], _stopped.Token);
            }
            catch (Exception) when (_stopped.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                // The target refused: so is this client, as a load balancer with a dead backend does it.
                client?.Close();
                continue;
            }

            lock (_gate)
            {
                _connections[next]++;
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
            // One side went away: so does the other.
            to.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopped.CancelAsync();
        _listener.Stop();
        lock (_gate)
        {
            foreach (var socket in _open)
            {
                socket.Close();
            }

            _open.Clear();
        }

        await _accepting;
        _stopped.Dispose();
    }
}
