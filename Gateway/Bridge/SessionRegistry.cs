using System.Collections.Concurrent;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>This instance's hub connections and their upstream sessions, by SignalR connection id.</summary>
internal sealed class SessionRegistry
{
    private readonly ConcurrentDictionary<string, UpstreamSession> _sessions = new(StringComparer.Ordinal);

    public int Count => _sessions.Count;

    public void Add(string connectionId, UpstreamSession session) => _sessions[connectionId] = session;

    public void Remove(string connectionId) => _sessions.TryRemove(connectionId, out _);

    public bool TryGet(string connectionId, out UpstreamSession session) => _sessions.TryGetValue(connectionId, out session!);
}
