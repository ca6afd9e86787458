using System.Collections.Concurrent;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>The sessions of this instance, by <c>socketIOClientId</c>. The whole directory when the gateway runs alone.</summary>
internal sealed class MemorySessionDirectory : ISessionDirectory
{
    private readonly ConcurrentDictionary<string, BridgedConnection> _sessions = new(StringComparer.Ordinal);

    public int LocalCount => _sessions.Count;

    public IEnumerable<BridgedConnection> LocalConnections => _sessions.Values;

    public Task AddAsync(BridgedConnection connection)
    {
        _sessions[connection.SocketIOClientId] = connection;
        return Task.CompletedTask;
    }

    public Task RemoveAsync(BridgedConnection connection)
    {
        _sessions.TryRemove(new KeyValuePair<string, BridgedConnection>(connection.SocketIOClientId, connection));
        return Task.CompletedTask;
    }

    public ValueTask<SessionLookup> FindAsync(string socketIOClientId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TryGetLocal(socketIOClientId, out var connection) ? SessionLookup.Found(SessionLocation.Of(connection)) : SessionLookup.NotFound);

    public bool TryGetLocal(string socketIOClientId, out BridgedConnection connection) => _sessions.TryGetValue(socketIOClientId, out connection!);
}
