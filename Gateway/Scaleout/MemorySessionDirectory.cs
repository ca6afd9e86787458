using System.Collections.Concurrent;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>The sessions of this instance, by hub connection id. The whole directory when the gateway runs alone.</summary>
internal sealed class MemorySessionDirectory : ISessionDirectory
{
    private readonly ConcurrentDictionary<string, BridgedConnection> _sessions = new(StringComparer.Ordinal);

    public int LocalCount => _sessions.Count;

    public ICollection<KeyValuePair<string, BridgedConnection>> Local => _sessions;

    public IEnumerable<BridgedConnection> LocalConnections => _sessions.Values;

    public Task AddAsync(string connectionId, BridgedConnection connection)
    {
        _sessions[connectionId] = connection;
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string connectionId)
    {
        _sessions.TryRemove(connectionId, out _);
        return Task.CompletedTask;
    }

    public ValueTask<SessionLocation?> FindAsync(string connectionId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TryGetLocal(connectionId, out var connection) ? Locate(connection) : (SessionLocation?)null);

    public bool TryGetLocal(string connectionId, out BridgedConnection connection) => _sessions.TryGetValue(connectionId, out connection!);

    public static SessionLocation Locate(BridgedConnection connection) => new(connection.Session?.SocketId, connection.Session?.Destination);
}
