using Microsoft.AspNetCore.SignalR;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>What a hub connection carries in its features: its ids, its owner, its upstream session and the relay that feeds it.</summary>
internal sealed class BridgedConnection(string connectionId, string? owner, UpstreamCaller caller, UpstreamSession? session, ConnectionRelay relay, CancellationToken closed)
{
    // The connection itself holds its session, and so does each prediction of it still running.
    private int _holds = 1;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>SignalR's id of the connection: what the backplane addresses.</summary>
    public string ConnectionId { get; } = connectionId;

    /// <summary>The id the client sends as <c>socketIOClientId</c> (<see cref="SocketIOClientIds"/>).</summary>
    public string SocketIOClientId { get; } = SocketIOClientIds.New();

    /// <summary>The principal that opened the connection (<see cref="ConnectionOwner"/>); null without gateway authentication.</summary>
    public string? Owner { get; } = owner;

    /// <summary>What TROM.AI may see of the client on the gateway's calls for this connection (<c>Predict</c>, <c>Abort</c>).</summary>
    public UpstreamCaller Caller { get; private set; } = caller;

    private readonly string? _requestsKey = caller.TromAiKey;

    /// <summary>
    /// The TROM.AI key this connection's calls send from now on, in place of the one its opening request
    /// brought (none: that one again). For clients whose request cannot carry it, a browser's WebSocket
    /// with gateway authentication on.
    /// </summary>
    public void UseTromAiKey(string? key) => Caller = Caller with { TromAiKey = string.IsNullOrEmpty(key) ? _requestsKey : key };

    /// <summary>The connection's Socket.IO session; null when TROM.AI streams over SSE, where each prediction is its own stream.</summary>
    public UpstreamSession? Session { get; } = session;

    public ConnectionRelay Relay { get; } = relay;

    /// <summary>By the hub's lifetime manager as SignalR takes a connection: its relay starts sending to it.</summary>
    public static void OnHubConnected(HubConnectionContext hub) => hub.Features.Get<BridgedConnection>()?.Relay.Start(hub);

    /// <summary>Cancelled when the client's connection has ended; the session may live on for predictions that hold it.</summary>
    public CancellationToken Closed { get; } = closed;

    /// <summary>Held by the connection's running <c>Predict</c>: TROM.AI streams per socket, so two at once would mix.</summary>
    public SemaphoreSlim Predicting { get; } = new(1, 1);

    /// <summary>
    /// Keeps the upstream session (and the relay reading it) open until the returned handle is disposed,
    /// even after the client's connection ends: a prediction that runs on for its stream. Null once
    /// the connection has ended and nothing held it.
    /// </summary>
    public IDisposable? TryHold()
    {
        var holds = Volatile.Read(ref _holds);
        while (holds > 0)
        {
            var seen = Interlocked.CompareExchange(ref _holds, holds + 1, holds);
            if (seen == holds)
            {
                return new Hold(this);
            }

            holds = seen;
        }

        return null;
    }

    /// <summary>The client's connection has ended; completes once no prediction holds the session any more.</summary>
    public Task ReleaseConnectionAsync()
    {
        Release();
        return _released.Task;
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _holds) == 0)
        {
            _released.TrySetResult();
        }
    }

    private sealed class Hold(BridgedConnection connection) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                connection.Release();
            }
        }
    }
}
