namespace TromAi.Gateway.Bridge;

/// <summary>
/// The gateway's own notifications to a hub connection. The <c>gateway:</c> prefix cannot collide
/// with an upstream event: TROM.AI's event names are plain identifiers.
/// </summary>
public static class GatewayEvents
{
    internal const string Prefix = "gateway:";

    /// <summary>The connection's upstream session dropped; events stop until <see cref="UpstreamRestored"/>. Argument: <c>{reason}</c>.</summary>
    public const string UpstreamLost = "gateway:upstream-lost";

    /// <summary>The upstream session is back (under a new upstream id, which the gateway maps for you). Argument: <c>{attempts, downtimeMs}</c>.</summary>
    public const string UpstreamRestored = "gateway:upstream-restored";

    /// <summary>This instance is shutting down and closes the connection next; reconnect (to another instance). Argument: <c>{reason}</c>.</summary>
    public const string Draining = "gateway:draining";

    internal sealed record DrainingNotice(string Reason);

    internal sealed record UpstreamLostNotice(string Reason);

    internal sealed record UpstreamRestoredNotice(int Attempts, long DowntimeMs);
}
