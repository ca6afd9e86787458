namespace TromAi.Gateway.Bridge;

/// <summary>
/// Every hub connection by the id it hands out as <c>socketIOClientId</c>: its SignalR connection id,
/// its owner, its upstream socket id and the TROM.AI replica holding it, findable from any gateway
/// instance. In memory when the gateway runs alone; shared when several instances share the work.
/// </summary>
internal interface ISessionDirectory
{
    /// <summary>Sessions held by this instance.</summary>
    int LocalCount { get; }

    /// <summary>The connections of this instance.</summary>
    IEnumerable<BridgedConnection> LocalConnections { get; }

    /// <summary>Adds a connection of this instance; completes once other instances can find it, or the attempt failed (logged).</summary>
    Task AddAsync(BridgedConnection connection);

    Task RemoveAsync(BridgedConnection connection);

    /// <summary>A connection of this instance, by its <c>socketIOClientId</c>.</summary>
    bool TryGetLocal(string socketIOClientId, out BridgedConnection connection);

    /// <summary>The session of a hub connection of any instance, by its <c>socketIOClientId</c>.</summary>
    ValueTask<SessionLookup> FindAsync(string socketIOClientId, CancellationToken cancellationToken);
}

internal enum SessionLookupStatus
{
    /// <summary>No connection hands out that id (a plain Socket.IO client's id, or a stale one).</summary>
    NotFound,

    Found,

    /// <summary>The shared directory could not be asked (Redis down or slow): the id may be another instance's.</summary>
    Unavailable,
}

/// <param name="Location">Set when <paramref name="Status"/> is <see cref="SessionLookupStatus.Found"/>.</param>
internal readonly record struct SessionLookup(SessionLookupStatus Status, SessionLocation Location = default)
{
    public static SessionLookup NotFound => new(SessionLookupStatus.NotFound);

    public static SessionLookup Unavailable => new(SessionLookupStatus.Unavailable);

    public static SessionLookup Found(SessionLocation location) => new(SessionLookupStatus.Found, location);
}

/// <param name="ConnectionId">The SignalR connection id, to send to the connection through the backplane.</param>
/// <param name="Owner">The principal that opened the connection (<see cref="ConnectionOwner"/>), or null.</param>
/// <param name="SocketId">The upstream socket id; null while the session reconnects, and in SSE mode (no socket).</param>
/// <param name="Destination">The replica holding the socket; null in SSE mode.</param>
/// <param name="Instance">
/// The gateway instance holding the connection, when it is another one (its events arrive there, so a
/// REST prediction for it is kept there: <see cref="IRemoteRestStreams"/>); null for this instance's own.
/// </param>
internal readonly record struct SessionLocation(string ConnectionId, string? Owner, string? SocketId, Uri? Destination, string? Instance = null)
{
    public static SessionLocation Of(BridgedConnection connection) =>
        new(connection.ConnectionId, connection.Owner, connection.Session?.SocketId, connection.Session?.Destination);
}
