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

    /// <summary>
    /// A prediction asked over REST for this connection starts: the events that follow, up to
    /// <see cref="StreamEnd"/>, are its stream's, numbered 1, 2, ... in arrival order. Argument:
    /// <c>{streamId, chatflowId, chatId}</c>; send <c>streamId</c> to <c>Resume</c> after a lost connection.
    /// Also the first item of every <c>Predict</c> and <c>Resume</c> stream (sequence number 0).
    /// </summary>
    public const string Stream = "gateway:stream";

    /// <summary>The REST prediction's last event has been sent. Argument: <c>{streamId, lastSeq}</c>.</summary>
    public const string StreamEnd = "gateway:stream-end";

    internal sealed record DrainingNotice(string Reason);

    internal sealed record StreamNotice(string StreamId, string ChatflowId, string? ChatId);

    internal sealed record StreamEndNotice(string StreamId, long LastSeq);

    internal sealed record UpstreamLostNotice(string Reason);

    internal sealed record UpstreamRestoredNotice(int Attempts, long DowntimeMs);
}
