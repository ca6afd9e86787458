using System.Text;
using StackExchange.Redis;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Names of the backplane's Redis channels for one hub: <c>{prefix}:signalr:{hub}:</c> followed by <c>all</c>,
/// <c>connection:{id}</c>, <c>group:{name}</c>, <c>user:{id}</c>, or an <c>internal:</c> channel (group commands,
/// and the acks, client results and probes addressed to one instance).
/// </summary>
/// <remarks>
/// Every channel is <see cref="RedisChannel.PatternMode.Literal"/>: StackExchange.Redis would otherwise treat a group
/// or user name containing <c>*</c>, <c>?</c> or <c>[</c> as a pattern and PSUBSCRIBE to it. Names are encoded once
/// into the channel's own byte array, so a send to a group costs one allocation for its channel.
/// </remarks>
internal sealed class RedisBackplaneChannels
{
    private readonly byte[] _connectionPrefix;
    private readonly byte[] _groupPrefix;
    private readonly byte[] _userPrefix;
    private readonly string _internalPrefix;

    public RedisBackplaneChannels(string keyPrefix, string hubName, string instanceId)
    {
        var hubPrefix = $"{keyPrefix}:signalr:{hubName}:";
        _connectionPrefix = Encoding.UTF8.GetBytes(hubPrefix + "connection:");
        _groupPrefix = Encoding.UTF8.GetBytes(hubPrefix + "group:");
        _userPrefix = Encoding.UTF8.GetBytes(hubPrefix + "user:");
        _internalPrefix = hubPrefix + "internal:";

        All = Literal(hubPrefix + "all");
        GroupManagement = Literal(_internalPrefix + "groups");
        Ack = AckFor(instanceId);
        Results = ResultsFor(instanceId);
    }

    /// <summary>Every instance listens here: sends to all connections, with or without exclusions.</summary>
    public RedisChannel All { get; }

    /// <summary>Every instance listens here for group changes of connections that another instance asked for.</summary>
    public RedisChannel GroupManagement { get; }

    /// <summary>This instance's acks for the group changes it asked for.</summary>
    public RedisChannel Ack { get; }

    /// <summary>This instance's client results from connections on other instances.</summary>
    public RedisChannel Results { get; }

    public RedisChannel Connection(string connectionId) => Literal(_connectionPrefix, connectionId);

    public RedisChannel Group(string groupName) => Literal(_groupPrefix, groupName);

    public RedisChannel User(string userId) => Literal(_userPrefix, userId);

    public RedisChannel AckFor(string instanceId) => Literal(_internalPrefix + "ack:" + instanceId);

    public RedisChannel ResultsFor(string instanceId) => Literal(_internalPrefix + "results:" + instanceId);

    /// <summary>A channel nobody else uses, for one round trip that proves this instance's subscriptions are in place.</summary>
    public RedisChannel Probe(string instanceId, long attempt) => Literal($"{_internalPrefix}probe:{instanceId}:{attempt}");

    private static RedisChannel Literal(string name) => new(name, RedisChannel.PatternMode.Literal);

    private static RedisChannel Literal(byte[] prefix, string name)
    {
        var bytes = new byte[prefix.Length + Encoding.UTF8.GetByteCount(name)];
        prefix.CopyTo(bytes, 0);
        Encoding.UTF8.GetBytes(name, bytes.AsSpan(prefix.Length));
        return new RedisChannel(bytes, RedisChannel.PatternMode.Literal);
    }
}
