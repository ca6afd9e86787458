using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Where each hub connection's upstream socket lives: its upstream socket id and the TROM.AI replica
/// holding it, findable from any gateway instance. In memory when the gateway runs alone; in Redis
/// when several instances share the work.
/// </summary>
internal interface ISessionDirectory
{
    /// <summary>Sessions held by this instance.</summary>
    int LocalCount { get; }

    /// <summary>Adds a connection of this instance; completes once other instances can find it, or the attempt failed (logged).</summary>
    Task AddAsync(string connectionId, BridgedConnection connection);

    Task RemoveAsync(string connectionId);

    /// <summary>The session of a hub connection of any instance, or null when none holds that id.</summary>
    ValueTask<SessionLocation?> FindAsync(string connectionId, CancellationToken cancellationToken);

    /// <summary>The connections of this instance.</summary>
    IEnumerable<BridgedConnection> LocalConnections { get; }

    /// <summary>A connection of this instance.</summary>
    bool TryGetLocal(string connectionId, out BridgedConnection connection);
}

/// <param name="SocketId">The upstream socket id; null while the session reconnects, and in SSE mode (no socket).</param>
/// <param name="Destination">The replica holding the socket; null in SSE mode.</param>
internal readonly record struct SessionLocation(string? SocketId, Uri? Destination);
