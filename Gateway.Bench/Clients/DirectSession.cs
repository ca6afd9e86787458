using System.Diagnostics;
using System.Text.Json;
using TromAi.Gateway.Upstream;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Bench.Clients;

/// <summary>
/// The direct path: a Socket.IO client connected straight to the upstream, and the same one the gateway's
/// upstream leg uses (<see cref="SocketIOConnection"/>, WebSocket, ready at the server's CONNECT), so the
/// difference to the bridged path is the relay and the SignalR leg. Until the gateway read TROM.AI with it, this
/// was SocketIOClient 3.0.6 over the gateway's own WebSocket; RESULTS.md says which figures were taken with which.
/// </summary>
internal sealed class DirectSession : BenchSession, ISocketIOListener
{
    private SocketIOConnection? _connection;

    private DirectSession()
    {
    }

    public override string SocketIOClientId => _connection!.SocketId;

    public static async Task<DirectSession> ConnectAsync(Uri upstream, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var session = new DirectSession();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var begun = Stopwatch.GetTimestamp();
        try
        {
            session._connection = await SocketIOConnection.ConnectAsync(upstream, session, null, deadline.Token);
        }
        catch (SocketIOClosedException e)
        {
            throw new IOException($"Socket.IO connect to {upstream} failed: {e.Message}", e);
        }

        session.ConnectTime = Stopwatch.GetElapsedTime(begun);
        return session;
    }

    void ISocketIOListener.OnEvent(string name, object?[] args) => ((ISocketIOListener)this).OnEvent(name, EventArguments.Of(args));

    void ISocketIOListener.OnEvent(string name, EventArguments args)
    {
        switch (name)
        {
            case "token":
                // The token's string, as a SignalR client's handler gets it.
                var utf8 = args.TryGetJson(out var json) ? json : ((RawJson)args.ToArray()[0]!).Utf8;
                OnToken(JsonSerializer.Deserialize<string>(utf8.Span)!);
                break;
            case "start":
                OnStart();
                break;
            case "end":
                OnEnd();
                break;
        }
    }

    void ISocketIOListener.OnClosed(string reason) => OnClosed(reason);

    public override ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;
}
