namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Log scopes that tie a log line to its hub connection and its upstream socket. With
/// <c>Logging:Console:FormatterOptions:IncludeScopes</c> they appear on every line written inside
/// them (as <c>HubConnectionId</c> and <c>UpstreamSocketId</c> properties in JSON logs). The
/// templates are parsed once. Upstream socket ids go to logs only, never to clients.
/// </summary>
internal static class LogScopes
{
    // Not "ConnectionId": Kestrel's scope already uses that name for the TCP connection.
    private static readonly Func<ILogger, string, IDisposable?> HubConnection =
        LoggerMessage.DefineScope<string>("HubConnectionId:{HubConnectionId}");

    private static readonly Func<ILogger, string, IDisposable?> UpstreamSocket =
        LoggerMessage.DefineScope<string>("UpstreamSocketId:{UpstreamSocketId}");

    public static IDisposable? BeginConnectionScope(this ILogger logger, string connectionId) => HubConnection(logger, connectionId);

    /// <summary>No scope while the session has no socket (connecting, reconnecting).</summary>
    public static IDisposable? BeginUpstreamScope(this ILogger logger, string? upstreamSocketId) =>
        string.IsNullOrEmpty(upstreamSocketId) ? null : UpstreamSocket(logger, upstreamSocketId);
}
