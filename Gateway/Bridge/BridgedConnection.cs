using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>What a hub connection carries in its features: its ids, its owner, its upstream session and the relay that feeds it.</summary>
internal sealed class BridgedConnection(string connectionId, string? owner, UpstreamCaller caller, UpstreamSession? session, ConnectionRelay relay)
{
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

    /// <summary>Held by the connection's running <c>Predict</c>: TROM.AI streams per socket, so two at once would mix.</summary>
    public SemaphoreSlim Predicting { get; } = new(1, 1);
}
