using TromAi.Gateway.Upstream;

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

    /// <summary>Adds a session of this instance; completes once other instances can find it, or the attempt failed (logged).</summary>
    Task AddAsync(string connectionId, UpstreamSession session);

    Task RemoveAsync(string connectionId);

    /// <summary>The session of a hub connection of any instance, or null when none holds that id.</summary>
    ValueTask<SessionLocation?> FindAsync(string connectionId, CancellationToken cancellationToken);
}

/// <param name="SocketId">The upstream socket id; null while the session reconnects.</param>
/// <param name="Destination">The replica holding the socket.</param>
internal readonly record struct SessionLocation(string? SocketId, Uri? Destination);
