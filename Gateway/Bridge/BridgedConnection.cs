using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>What a hub connection carries in its features: its upstream session and the relay that feeds it.</summary>
internal sealed class BridgedConnection(UpstreamSession session, ConnectionRelay relay)
{
    public UpstreamSession Session { get; } = session;

    public ConnectionRelay Relay { get; } = relay;
}
