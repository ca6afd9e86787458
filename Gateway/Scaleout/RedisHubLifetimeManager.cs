using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using GroupAction = TromAi.Gateway.Scaleout.RedisBackplaneProtocol.GroupAction;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// SignalR's Redis backplane, on StackExchange.Redis 1.x: sends reach every instance's connections through one
/// Redis channel per connection, group and user, plus one for all connections, as in ASP.NET Core's own
/// <c>RedisHubLifetimeManager</c>.
/// </summary>
/// <remarks>
/// Unlike ASP.NET Core's, every send is delivered to this instance's own connections directly and published for the
/// others, which skip their own copy: connections on this instance keep receiving while Redis is down. When a
/// publish fails, a send to all, groups or users is logged, not thrown: it has reached what it could, and a retry
/// would repeat it to those. What only another instance can do (a send to one connection it holds, a group change
/// or a client result of such a connection) throws <see cref="RedisUnavailableException"/> instead.
/// </remarks>
internal sealed partial class RedisHubLifetimeManager<THub> : HubLifetimeManager<THub>, IDisposable where THub : Hub
{
    private const string DisconnectedError = "The connection closed before it returned a result.";

    private readonly HubConnectionStore _connections = new();
    private readonly RedisConnection _redis;
    private readonly IHubProtocolResolver _protocolResolver;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RedisBackplaneChannels _channels;
    private readonly RedisBackplaneProtocol _protocol;
    private readonly RedisSubscriptions _subscriptions;
    private readonly LocalMembership _groups;
    private readonly LocalMembership _users;
    private readonly GroupCommandAcks _acks = new();
    private readonly PendingClientResults _results = new();
    private readonly string _invocationIdPrefix;
    private long _lastInvocationId;
    private int _publishFailing;

    public RedisHubLifetimeManager(
        RedisConnection redis,
        IHubProtocolResolver protocolResolver,
        IOptions<HubOptions> globalHubOptions,
        IOptions<HubOptions<THub>> hubOptions,
        TimeProvider time,
        ILogger<RedisHubLifetimeManager<THub>> logger)
    {
        _redis = redis;
        _protocolResolver = protocolResolver;
        _time = time;
        _logger = logger;
        _channels = new RedisBackplaneChannels(redis.KeyPrefix, typeof(THub).FullName!, redis.InstanceId);
        _protocol = new RedisBackplaneProtocol(
            SupportedProtocols(protocolResolver, hubOptions.Value.SupportedProtocols ?? globalHubOptions.Value.SupportedProtocols),
            redis.InstanceId);
        // Invocation ids name their instance: the instance holding the connection keys its pending results by them.
        _invocationIdPrefix = redis.InstanceId + ":";

        _subscriptions = new RedisSubscriptions(redis, _channels, time, logger);
        _groups = new LocalMembership(_subscriptions, _channels.Group, members => (_, message) => OnMembersMessage(members, message));
        _users = new LocalMembership(_subscriptions, _channels.User, members => (_, message) => OnMembersMessage(members, message));
        _ = _subscriptions.SubscribeAsync(_channels.All, (_, message) => OnMembersMessage(_connections, message));
        _ = _subscriptions.SubscribeAsync(_channels.GroupManagement, (_, message) => OnGroupCommand(message));
        _ = _subscriptions.SubscribeAsync(_channels.Ack, (_, message) => OnAck(message));
        _ = _subscriptions.SubscribeAsync(_channels.Results, (_, message) => OnResult(message));
        _subscriptions.Start();
    }

    /// <summary>Raised each time the backplane is (re)connected to Redis, its subscriptions confirmed. For tests and diagnostics.</summary>
    internal event Action? BackplaneConnected
    {
        add => _subscriptions.Connected += value;
        remove => _subscriptions.Connected -= value;
    }

    internal bool IsBackplaneConnected => _subscriptions.IsConnected;

    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        connection.Features.Set(new BackplaneFeature());
        _connections.Add(connection);

        var connectionSubscribed = _subscriptions.SubscribeAsync(
            _channels.Connection(connection.ConnectionId),
            (_, message) => OnConnectionMessage(connection, message));
        var userSubscribed = string.IsNullOrEmpty(connection.UserIdentifier)
            ? Task.CompletedTask
            : _users.AddAsync(connection.UserIdentifier, connection);

        // The connection's start() completes once other instances can reach it; at most OperationTimeout later
        // when Redis does not answer, at once when it is down.
        return AwaitSubscriptionAsync(connectionSubscribed, userSubscribed);
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        _connections.Remove(connection);

        var tasks = new List<Task>(4)
        {
            _subscriptions.UnsubscribeAsync(_channels.Connection(connection.ConnectionId)),
            _results.FailConnectionAsync(connection.ConnectionId, DisconnectedError),
        };

        if (connection.Features.Get<BackplaneFeature>() is { } feature)
        {
            string[] groups;
            lock (feature.Groups)
            {
                groups = [.. feature.Groups];
                feature.Groups.Clear();
            }

            foreach (var group in groups)
            {
                tasks.Add(_groups.RemoveAsync(group, connection));
            }
        }

        if (!string.IsNullOrEmpty(connection.UserIdentifier))
        {
            tasks.Add(_users.RemoveAsync(connection.UserIdentifier, connection));
        }

        return AwaitSubscriptionAsync(Task.WhenAll(tasks), Task.CompletedTask);
    }

    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(_connections, _channels.All, Invocation(methodName, args), excludedConnectionIds: null, cancellationToken);

    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        SendAsync(_connections, _channels.All, Invocation(methodName, args), excludedConnectionIds, cancellationToken);

    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);

        // A local connection is written directly: no trip through Redis, no serialization for other protocols.
        if (_connections[connectionId] is { } connection)
        {
            return connection.WriteAsync(new InvocationMessage(methodName, args), cancellationToken).AsTask();
        }

        // Nothing has been delivered, so a failed publish is the caller's to know, as in ASP.NET Core's backplane.
        return PublishOrThrowAsync(
            _channels.Connection(connectionId), _protocol.WriteInvocation(Invocation(methodName, args)), CrossInstance.Send, methodName, connectionId);
    }

    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionIds);

        var message = Invocation(methodName, args);
        byte[]? payload = null;
        List<Task>? pending = null;
        foreach (var connectionId in connectionIds)
        {
            Task sent;
            if (_connections[connectionId] is { } connection)
            {
                sent = connection.WriteAsync(message, cancellationToken).AsTask();
            }
            else if (_subscriptions.CanPublish)
            {
                payload ??= _protocol.WriteInvocation(message);
                sent = PublishAsync(_channels.Connection(connectionId), payload);
            }
            else
            {
                sent = PublishSkipped();
            }

            Collect(ref pending, sent);
        }

        return WhenAll(pending);
    }

    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupName);
        return SendAsync(_groups[groupName], _channels.Group(groupName), Invocation(methodName, args), excludedConnectionIds: null, cancellationToken);
    }

    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupName);
        return SendAsync(_groups[groupName], _channels.Group(groupName), Invocation(methodName, args), excludedConnectionIds, cancellationToken);
    }

    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupNames);
        return SendToEachAsync(groupNames, _groups, _channels.Group, Invocation(methodName, args), cancellationToken);
    }

    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        return SendAsync(_users[userId], _channels.User(userId), Invocation(methodName, args), excludedConnectionIds: null, cancellationToken);
    }

    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        return SendToEachAsync(userIds, _users, _channels.User, Invocation(methodName, args), cancellationToken);
    }

    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(groupName);

        return _connections[connectionId] is { } connection
            ? AwaitSubscriptionAsync(AddLocalToGroup(connection, groupName), Task.CompletedTask)
            : SendGroupCommandAsync(connectionId, groupName, GroupAction.Add, cancellationToken);
    }

    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(groupName);

        return _connections[connectionId] is { } connection
            ? AwaitSubscriptionAsync(RemoveLocalFromGroup(connection, groupName), Task.CompletedTask)
            : SendGroupCommandAsync(connectionId, groupName, GroupAction.Remove, cancellationToken);
    }

    public override async Task<T> InvokeConnectionAsync<T>(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(methodName);

        var invocationId = _invocationIdPrefix + Interlocked.Increment(ref _lastInvocationId).ToString(CultureInfo.InvariantCulture);
        var result = _results.Add<T>(connectionId, invocationId, cancellationToken);
        try
        {
            if (_connections[connectionId] is { } connection)
            {
                // OnDisconnectedAsync may have failed this connection's invocations just before this one was added.
                if (connection.ConnectionAborted.IsCancellationRequested)
                {
                    await _results.CompleteAsync(connectionId, CompletionMessage.WithError(invocationId, DisconnectedError));
                }
                else
                {
                    await connection.WriteAsync(new InvocationMessage(invocationId, methodName, args), cancellationToken);
                }
            }
            else
            {
                var payload = _protocol.WriteInvocation(new SerializedHubMessage(new InvocationMessage(invocationId, methodName, args)), invocationId: invocationId);
                var receivers = await PublishOrThrowAsync(_channels.Connection(connectionId), payload, CrossInstance.Invoke, methodName, connectionId);
                if (receivers == 0)
                {
                    throw new InvalidOperationException(
                        $"Invoking '{methodName}' on connection '{connectionId}' failed: no gateway instance holds that connection.");
                }
            }
        }
        catch
        {
            _results.Remove(invocationId);
            throw;
        }

        return await result;
    }

    public override Task SetConnectionResultAsync(string connectionId, CompletionMessage result) =>
        _results.CompleteAsync(connectionId, result);

    public override bool TryGetReturnType(string invocationId, [NotNullWhen(true)] out Type? type) =>
        _results.TryGetType(invocationId, out type);

    public void Dispose()
    {
        _subscriptions.Dispose();
        _acks.Dispose();
    }

    private static SerializedHubMessage Invocation(string methodName, object?[] args) =>
        new(new InvocationMessage(methodName, args));

    private static IReadOnlyList<IHubProtocol> SupportedProtocols(IHubProtocolResolver resolver, IList<string>? names)
    {
        if (names is null || names.Count == 0)
        {
            return resolver.AllProtocols;
        }

        var supported = names as IReadOnlyList<string> ?? [.. names];
        var protocols = new List<IHubProtocol>(supported.Count);
        foreach (var name in supported)
        {
            if (resolver.GetProtocol(name, supported) is { } protocol)
            {
                protocols.Add(protocol);
            }
        }

        return protocols;
    }

    private Task SendAsync(
        HubConnectionStore? local,
        RedisChannel channel,
        SerializedHubMessage message,
        IReadOnlyList<string>? excludedConnectionIds,
        CancellationToken cancellationToken)
    {
        var written = WriteAsync(local, message, excludedConnectionIds, cancellationToken);
        var published = PublishAsync(channel, message, excludedConnectionIds);
        return written.IsCompletedSuccessfully ? published
            : published.IsCompletedSuccessfully ? written
            : Task.WhenAll(written, published);
    }

    private Task SendToEachAsync(
        IReadOnlyList<string> keys,
        LocalMembership membership,
        Func<string, RedisChannel> channelOf,
        SerializedHubMessage message,
        CancellationToken cancellationToken)
    {
        byte[]? payload = null;
        List<Task>? pending = null;
        foreach (var key in keys)
        {
            if (string.IsNullOrEmpty(key))
            {
                continue;
            }

            Collect(ref pending, WriteAsync(membership[key], message, excludedConnectionIds: null, cancellationToken));
            if (_subscriptions.CanPublish)
            {
                payload ??= _protocol.WriteInvocation(message);
                Collect(ref pending, PublishAsync(channelOf(key), payload));
            }
            else
            {
                Collect(ref pending, PublishSkipped());
            }
        }

        return WhenAll(pending);
    }

    private static Task WriteAsync(
        HubConnectionStore? connections,
        SerializedHubMessage message,
        IReadOnlyList<string>? excludedConnectionIds,
        CancellationToken cancellationToken)
    {
        if (connections is null)
        {
            return Task.CompletedTask;
        }

        List<Task>? pending = null;
        foreach (var connection in connections)
        {
            if (excludedConnectionIds is not null && Contains(excludedConnectionIds, connection.ConnectionId))
            {
                continue;
            }

            var written = connection.WriteAsync(message, cancellationToken);
            if (!written.IsCompletedSuccessfully)
            {
                (pending ??= []).Add(written.AsTask());
            }
        }

        return WhenAll(pending);
    }

    /// <summary>Publishes a send for the other instances. Never throws: a send that cannot leave this instance is logged.</summary>
    private Task PublishAsync(RedisChannel channel, SerializedHubMessage message, IReadOnlyList<string>? excludedConnectionIds) =>
        _subscriptions.CanPublish
            ? PublishAsync(channel, _protocol.WriteInvocation(message, excludedConnectionIds))
            : PublishSkipped();

    private async Task PublishAsync(RedisChannel channel, byte[] payload)
    {
        try
        {
            await _subscriptions.PublishAsync(channel, payload);
            PublishSucceeded();
        }
        catch (Exception e) when (IsRedisFailure(e))
        {
            PublishFailed(e.Message);
        }
    }

    /// <summary>
    /// Publishes what only another instance can deliver; a failure throws <see cref="RedisUnavailableException"/>,
    /// its message built only then (<paramref name="name"/> and <paramref name="connectionId"/> fill it in).
    /// </summary>
    private async Task<long> PublishOrThrowAsync(RedisChannel channel, byte[] payload, CrossInstance operation, string name, string connectionId)
    {
        try
        {
            var receivers = await _subscriptions.PublishAsync(channel, payload);
            PublishSucceeded();
            return receivers;
        }
        catch (Exception e) when (IsRedisFailure(e))
        {
            var what = operation switch
            {
                CrossInstance.Send => $"Sending '{name}' to connection '{connectionId}'",
                CrossInstance.Invoke => $"Invoking '{name}' on connection '{connectionId}'",
                CrossInstance.AddToGroup => $"Adding connection '{connectionId}' to group '{name}'",
                _ => $"Removing connection '{connectionId}' from group '{name}'",
            };
            throw new RedisUnavailableException(
                $"{what} failed: the connection is not on this instance, and Redis, through which the other instances are reached, is unavailable ({e.Message}).",
                e);
        }
    }

    private void PublishSucceeded()
    {
        if (Volatile.Read(ref _publishFailing) != 0 && Interlocked.Exchange(ref _publishFailing, 0) != 0)
        {
            Log.PublishRecovered(_logger);
        }
    }

    private Task PublishSkipped()
    {
        PublishFailed("not connected");
        return Task.CompletedTask;
    }

    private void PublishFailed(string reason)
    {
        // Once per outage at Warning: during one, every send to all, a group or a user would log otherwise.
        if (Interlocked.Exchange(ref _publishFailing, 1) == 0)
        {
            Log.PublishFailing(_logger, reason);
        }
        else
        {
            Log.PublishFailed(_logger, reason);
        }
    }

    private Task AddLocalToGroup(HubConnectionContext connection, string groupName)
    {
        var groups = connection.Features.GetRequiredFeature<BackplaneFeature>().Groups;
        lock (groups)
        {
            if (!groups.Add(groupName))
            {
                return Task.CompletedTask;
            }
        }

        return _groups.AddAsync(groupName, connection);
    }

    private Task RemoveLocalFromGroup(HubConnectionContext connection, string groupName)
    {
        var groups = connection.Features.GetRequiredFeature<BackplaneFeature>().Groups;
        lock (groups)
        {
            if (!groups.Remove(groupName))
            {
                return Task.CompletedTask;
            }
        }

        return _groups.RemoveAsync(groupName, connection);
    }

    /// <summary>
    /// Asks every instance to change the group of a connection this instance does not hold, and waits for the ack
    /// of the one that holds it, at most <see cref="RedisConnection.OperationTimeout"/>.
    /// </summary>
    private async Task SendGroupCommandAsync(string connectionId, string groupName, GroupAction action, CancellationToken cancellationToken)
    {
        var (ackId, acked) = _acks.Create();
        try
        {
            await PublishOrThrowAsync(
                _channels.GroupManagement,
                _protocol.WriteGroupCommand(ackId, action, groupName, connectionId),
                action == GroupAction.Add ? CrossInstance.AddToGroup : CrossInstance.RemoveFromGroup,
                groupName,
                connectionId);
            try
            {
                await acked.WaitAsync(_redis.OperationTimeout, _time, cancellationToken);
            }
            catch (TimeoutException e)
            {
                var change = action == GroupAction.Add
                    ? $"Adding connection '{connectionId}' to group '{groupName}'"
                    : $"Removing connection '{connectionId}' from group '{groupName}'";
                throw new TimeoutException(
                    $"{change} was not acknowledged within {_redis.OperationTimeout.TotalMilliseconds:0} ms (Gateway:Redis:OperationTimeout): " +
                    "no instance reachable through Redis holds that connection. It may have closed, or its instance may be down.",
                    e);
            }
        }
        finally
        {
            _acks.Forget(ackId);
        }
    }

    /// <summary>
    /// Waits for Redis to confirm subscriptions, at most <see cref="RedisConnection.OperationTimeout"/>, and never
    /// throws: a subscription Redis did not confirm stays registered and is made when Redis is back.
    /// </summary>
    private Task AwaitSubscriptionAsync(Task first, Task second)
    {
        if (first.IsCompletedSuccessfully && second.IsCompletedSuccessfully)
        {
            return Task.CompletedTask;
        }

        return AwaitAsync(second.IsCompletedSuccessfully ? first : first.IsCompletedSuccessfully ? second : Task.WhenAll(first, second));

        async Task AwaitAsync(Task subscribed)
        {
            try
            {
                await subscribed.WaitAsync(_redis.OperationTimeout, _time);
            }
            catch (Exception e) when (IsRedisFailure(e))
            {
                Log.SubscribeSlow(_logger, e.Message);
            }
        }
    }

    private void OnMembersMessage(HubConnectionStore members, RedisValue message)
    {
        if (Read(message) is { } invocation)
        {
            Observe(WriteAsync(members, invocation.Message, invocation.ExcludedConnectionIds, CancellationToken.None));
        }
    }

    private void OnConnectionMessage(HubConnectionContext connection, RedisValue message)
    {
        if (Read(message) is not { } invocation)
        {
            return;
        }

        if (invocation is { InvocationId: { } invocationId, Sender: { } sender })
        {
            // Another instance awaits this client's result; the completion goes back to it as the client sent it.
            var protocol = connection.Protocol;
            if (!_results.AddForwarded(invocationId, connection.ConnectionId, completion => ForwardResultAsync(sender, protocol, completion)))
            {
                Log.DuplicateInvocation(_logger, invocationId);
                return;
            }

            if (connection.ConnectionAborted.IsCancellationRequested)
            {
                Observe(_results.CompleteAsync(connection.ConnectionId, CompletionMessage.WithError(invocationId, DisconnectedError)));
                return;
            }
        }

        var written = connection.WriteAsync(invocation.Message);
        if (!written.IsCompletedSuccessfully)
        {
            Observe(written.AsTask());
        }
    }

    private async Task ForwardResultAsync(string instanceId, IHubProtocol protocol, CompletionMessage completion)
    {
        try
        {
            var payload = RedisBackplaneProtocol.WriteCompletion(protocol.Name, protocol.GetMessageBytes(completion).Span);
            await _subscriptions.PublishAsync(_channels.ResultsFor(instanceId), payload);
        }
        catch (Exception e) when (IsRedisFailure(e))
        {
            Log.ResultNotForwarded(_logger, completion.InvocationId, instanceId, e.Message);
        }
    }

    private void OnGroupCommand(RedisValue message)
    {
        RedisBackplaneProtocol.GroupCommand? command;
        try
        {
            command = (byte[]?)message is { } data ? _protocol.ReadGroupCommand(data) : null;
        }
        catch (InvalidDataException e)
        {
            Log.Unreadable(_logger, e);
            return;
        }

        if (command is null || _connections[command.ConnectionId] is not { } connection)
        {
            return;
        }

        // Applied here, in the order commands arrive; only the subscription wait and the ack run on.
        var applied = command.Action == GroupAction.Add
            ? AddLocalToGroup(connection, command.GroupName)
            : RemoveLocalFromGroup(connection, command.GroupName);
        _ = AckAsync(applied, command);
    }

    private async Task AckAsync(Task applied, RedisBackplaneProtocol.GroupCommand command)
    {
        await AwaitSubscriptionAsync(applied, Task.CompletedTask);
        try
        {
            await _subscriptions.PublishAsync(_channels.AckFor(command.Sender), RedisBackplaneProtocol.WriteAck(command.AckId));
        }
        catch (Exception e) when (IsRedisFailure(e))
        {
            Log.AckNotSent(_logger, command.Sender, e.Message);
        }
    }

    private void OnAck(RedisValue message)
    {
        try
        {
            if ((byte[]?)message is { } data)
            {
                _acks.Complete(RedisBackplaneProtocol.ReadAck(data));
            }
        }
        catch (InvalidDataException e)
        {
            Log.Unreadable(_logger, e);
        }
    }

    private void OnResult(RedisValue message)
    {
        try
        {
            if ((byte[]?)message is not { } data)
            {
                return;
            }

            var (protocolName, bytes) = _protocol.ReadCompletion(data);
            var protocol = FindProtocol(protocolName)
                ?? throw new InvalidDataException($"A client result arrived in hub protocol '{protocolName}', which this instance does not have.");
            var serialized = new ReadOnlySequence<byte>(bytes);
            if (protocol.TryParseMessage(ref serialized, _results, out var parsed) && parsed is CompletionMessage completion)
            {
                _results.CompleteForwarded(completion);
            }
        }
        catch (Exception e)
        {
            // Whatever a malformed or unexpected result throws, the subscription's delivery loop must go on.
            Log.Unreadable(_logger, e);
        }
    }

    private IHubProtocol? FindProtocol(string name)
    {
        foreach (var protocol in _protocol.Protocols)
        {
            if (protocol.Name == name)
            {
                return protocol;
            }
        }

        return _protocolResolver.GetProtocol(name, null);
    }

    private RedisBackplaneProtocol.Invocation? Read(RedisValue message)
    {
        try
        {
            return (byte[]?)message is { } data ? _protocol.ReadInvocation(data) : null;
        }
        catch (InvalidDataException e)
        {
            Log.Unreadable(_logger, e);
            return null;
        }
    }

    // Messages from Redis arrive one at a time on StackExchange.Redis's delivery loop, which must not wait for a
    // slow client: writes run on, and a failed one is logged.
    private void Observe(Task task)
    {
        if (!task.IsCompletedSuccessfully)
        {
            _ = ObserveAsync(task);
        }
    }

    private async Task ObserveAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception e)
        {
            Log.WriteFailed(_logger, e);
        }
    }

    private static bool Contains(IReadOnlyList<string> connectionIds, string connectionId)
    {
        for (var i = 0; i < connectionIds.Count; i++)
        {
            if (connectionIds[i] == connectionId)
            {
                return true;
            }
        }

        return false;
    }

    private static void Collect(ref List<Task>? pending, Task task)
    {
        if (!task.IsCompletedSuccessfully)
        {
            (pending ??= []).Add(task);
        }
    }

    private static Task WhenAll(List<Task>? pending) => pending switch
    {
        null => Task.CompletedTask,
        [var only] => only,
        _ => Task.WhenAll(pending),
    };

    private static bool IsRedisFailure(Exception e) => e is RedisException or RedisUnavailableException or TimeoutException;

    private enum CrossInstance
    {
        Send,
        Invoke,
        AddToGroup,
        RemoveFromGroup,
    }

    /// <summary>The groups a connection is in, so its groups can be left when it closes.</summary>
    private sealed class BackplaneFeature
    {
        public HashSet<string> Groups { get; } = new(StringComparer.Ordinal);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Publishing to Redis failed ({Reason}): messages for connections on other instances are dropped until Redis is back. Connections on this instance keep receiving.")]
        public static partial void PublishFailing(ILogger logger, string reason);

        [LoggerMessage(2, LogLevel.Debug, "Publishing to Redis failed again ({Reason}).")]
        public static partial void PublishFailed(ILogger logger, string reason);

        [LoggerMessage(3, LogLevel.Information, "Publishing to Redis works again.")]
        public static partial void PublishRecovered(ILogger logger);

        [LoggerMessage(4, LogLevel.Warning, "Redis did not confirm a subscription ({Reason}); it stays registered and is made when Redis answers.")]
        public static partial void SubscribeSlow(ILogger logger, string reason);

        [LoggerMessage(5, LogLevel.Warning, "Dropped a backplane message that could not be read.")]
        public static partial void Unreadable(ILogger logger, Exception exception);

        [LoggerMessage(6, LogLevel.Debug, "Writing a backplane message to a connection failed.")]
        public static partial void WriteFailed(ILogger logger, Exception exception);

        [LoggerMessage(7, LogLevel.Warning, "Could not acknowledge a group change to instance {Instance} ({Reason}); it will time out there.")]
        public static partial void AckNotSent(ILogger logger, string instance, string reason);

        [LoggerMessage(8, LogLevel.Warning, "Could not return the client result of invocation {InvocationId} to instance {Instance} ({Reason}).")]
        public static partial void ResultNotForwarded(ILogger logger, string? invocationId, string instance, string reason);

        [LoggerMessage(9, LogLevel.Error, "Invocation id {InvocationId} from another instance is already pending here; the invocation is dropped.")]
        public static partial void DuplicateInvocation(ILogger logger, string invocationId);
    }
}
