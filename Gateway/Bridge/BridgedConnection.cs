using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>What a hub connection carries in its features: its upstream session and the relay that feeds it.</summary>
internal sealed class BridgedConnection(UpstreamSession? session, ConnectionRelay relay)
{
    /// <summary>The connection's Socket.IO session; null when TROM.AI streams over SSE, where each prediction is its own stream.</summary>
    public UpstreamSession? Session { get; } = session;

    public ConnectionRelay Relay { get; } = relay;

    /// <summary>Held by the connection's running <c>Predict</c>: TROM.AI streams per socket, so two at once would mix.</summary>
    public SemaphoreSlim Predicting { get; } = new(1, 1);
}
