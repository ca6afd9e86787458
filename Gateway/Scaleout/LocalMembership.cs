using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// This instance's connections in each group (or of each user), keeping the instance subscribed to a group's Redis
/// channel exactly while one of its connections is in the group.
/// </summary>
internal sealed class LocalMembership
{
    private readonly ConcurrentDictionary<string, HubConnectionStore> _members = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly RedisSubscriptions _subscriptions;
    private readonly Func<string, RedisChannel> _channelOf;
    private readonly Func<HubConnectionStore, Action<RedisChannel, RedisValue>> _handlerFor;

    /// <param name="channelOf">The Redis channel of a group (or user).</param>
    /// <param name="handlerFor">What to do with a message on that channel, given the group's local connections.</param>
    public LocalMembership(
        RedisSubscriptions subscriptions,
        Func<string, RedisChannel> channelOf,
        Func<HubConnectionStore, Action<RedisChannel, RedisValue>> handlerFor)
    {
        _subscriptions = subscriptions;
        _channelOf = channelOf;
        _handlerFor = handlerFor;
    }

    /// <summary>The local connections in <paramref name="key"/>; null when there are none.</summary>
    public HubConnectionStore? this[string key] => _members.TryGetValue(key, out var members) ? members : null;

    /// <summary>Adds a connection; the task ends when Redis has confirmed the channel's subscription, if this added the first one.</summary>
    public Task AddAsync(string key, HubConnectionContext connection)
    {
        // Subscribe and unsubscribe are issued under the lock, so Redis sees them in the order membership changed.
        lock (_gate)
        {
            if (_members.TryGetValue(key, out var members))
            {
                members.Add(connection);
                return Task.CompletedTask;
            }

            members = new HubConnectionStore();
            members.Add(connection);
            _members[key] = members;
            return _subscriptions.SubscribeAsync(_channelOf(key), _handlerFor(members));
        }
    }

    public Task RemoveAsync(string key, HubConnectionContext connection)
    {
        lock (_gate)
        {
            if (!_members.TryGetValue(key, out var members))
            {
                return Task.CompletedTask;
            }

            members.Remove(connection);
            if (members.Count > 0)
            {
                return Task.CompletedTask;
            }

            _members.TryRemove(key, out _);
            return _subscriptions.UnsubscribeAsync(_channelOf(key));
        }
    }
}
