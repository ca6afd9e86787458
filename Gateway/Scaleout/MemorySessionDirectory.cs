using System.Collections.Concurrent;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Scaleout;

/// <summary>The sessions of this instance, by hub connection id. The whole directory when the gateway runs alone.</summary>
internal sealed class MemorySessionDirectory : ISessionDirectory
{
    private readonly ConcurrentDictionary<string, UpstreamSession> _sessions = new(StringComparer.Ordinal);

    public int LocalCount => _sessions.Count;

    public ICollection<KeyValuePair<string, UpstreamSession>> Local => _sessions;

    public Task AddAsync(string connectionId, UpstreamSession session)
    {
        _sessions[connectionId] = session;
        return Task.CompletedTask;
    }

    public Task RemoveAsync(string connectionId)
    {
        _sessions.TryRemove(connectionId, out _);
        return Task.CompletedTask;
    }

    public ValueTask<SessionLocation?> FindAsync(string connectionId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TryGetLocal(connectionId, out var session) ? Locate(session) : (SessionLocation?)null);

    public bool TryGetLocal(string connectionId, out UpstreamSession session) => _sessions.TryGetValue(connectionId, out session!);

    public static SessionLocation Locate(UpstreamSession session) => new(session.SocketId, session.Destination);
}
