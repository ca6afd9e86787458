using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.AspNetCore.SignalR.StackExchangeRedis;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// ASP.NET Core's Redis backplane (<see cref="RedisHubLifetimeManager{THub}"/>), wrapped for one
/// thing it does not do: keep a Redis outage away from the connections of this instance. Left
/// alone, it fails a new connection whose channel it cannot subscribe while Redis is down, and
/// waits on Redis for its first use without bound. Here a connection that arrives during an outage
/// is served locally and handed to the backplane once Redis is back; sends to local connections
/// never touch Redis; every other call is the backplane's, given up after the operation timeout.
/// </summary>
internal sealed class RedisBackplane<THub> : HubLifetimeManager<THub>, IDisposable where THub : Hub
{
    private readonly RedisHubLifetimeManager<THub> _backplane;
    private readonly RedisConnection _redis;
    private readonly ILogger _logger;
    private readonly HubConnectionStore _local = new();
    private readonly ConcurrentDictionary<string, HubConnectionContext> _awaitingRedis = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _handingOver = new(1, 1);
    private int _disposed;

    public RedisBackplane(IServiceProvider services, RedisConnection redis, IHostApplicationLifetime lifetime, ILogger<RedisBackplane<THub>> logger)
    {
        // Ours, not the container's: the backplane unsubscribes when disposed, which needs the shared
        // multiplexer open, and the container would dispose the cache (which closes it) first.
        _backplane = ActivatorUtilities.CreateInstance<RedisHubLifetimeManager<THub>>(services);
        _redis = redis;
        _logger = logger;
        redis.Restored += OnRedisRestored;
        lifetime.ApplicationStopped.Register(DisposeBackplane);
        _ = HandOverOnceConnectedAsync();
    }

    private void OnRedisRestored() => _ = HandOverAsync();

    /// <summary>Connections that arrived while the first connection was being made are handed over once it is.</summary>
    private async Task HandOverOnceConnectedAsync()
    {
        await _redis.WhenFirstConnectedAsync();
        await HandOverAsync();
    }

    public override async Task OnConnectedAsync(HubConnectionContext connection)
    {
        BridgedConnection.OnHubConnected(connection);
        _local.Add(connection);
        if (!await TryRegisterAsync(connection))
        {
            _awaitingRedis[connection.ConnectionId] = connection;
            if (_redis.IsConnected)
            {
                _ = HandOverAsync(); // Redis came back while this connection failed: no restore event will follow
            }
        }
    }

    public override async Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        _local.Remove(connection);
        if (!_awaitingRedis.TryRemove(connection.ConnectionId, out _))
        {
            await ForgetAsync(connection);
        }
    }

    /// <summary>Registers the connection with the backplane, or leaves it unregistered (and the backplane clean) when Redis cannot be reached.</summary>
    private async Task<bool> TryRegisterAsync(HubConnectionContext connection)
    {
        // Until the first connection is made, the backplane waits for it: not a connection's start.
        if (!_redis.IsConnected || !_redis.HasConnected)
        {
            return false;
        }

        try
        {
            await _backplane.OnConnectedAsync(connection);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            RedisBackplaneLog.RegistrationDeferred(_logger, connection.ConnectionId, e.Message);
            await ForgetAsync(connection);
            return false;
        }
    }

    private async Task ForgetAsync(HubConnectionContext connection)
    {
        try
        {
            await _backplane.OnDisconnectedAsync(connection);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The subscription is dropped locally before Redis is asked; Redis drops it with our socket.
        }
        catch (InvalidOperationException)
        {
            // Its registration failed before the backplane had set the connection up: nothing to undo.
        }
    }

    /// <summary>Hands the connections that arrived during an outage to the backplane, once Redis is back.</summary>
    private async Task HandOverAsync()
    {
        await _handingOver.WaitAsync();
        try
        {
            foreach (var (connectionId, connection) in _awaitingRedis)
            {
                // Checked under the lock: a connection is registered once, or its messages would arrive twice.
                if (!_awaitingRedis.ContainsKey(connectionId) || connection.ConnectionAborted.IsCancellationRequested)
                {
                    continue;
                }

                if (!await TryRegisterAsync(connection))
                {
                    return; // Redis went again: the next restore resumes
                }

                if (!_awaitingRedis.TryRemove(connectionId, out _))
                {
                    await ForgetAsync(connection); // it ended meanwhile
                }
            }
        }
        finally
        {
            _handingOver.Release();
        }
    }

    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        _local[connectionId] is { } connection
            ? connection.WriteAsync(new InvocationMessage(methodName, args), cancellationToken).AsTask()
            : Bounded(_backplane.SendConnectionAsync(connectionId, methodName, args, cancellationToken));

    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendAllAsync(methodName, args, cancellationToken));

    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendAllExceptAsync(methodName, args, excludedConnectionIds, cancellationToken));

    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendConnectionsAsync(connectionIds, methodName, args, cancellationToken));

    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendGroupAsync(groupName, methodName, args, cancellationToken));

    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendGroupsAsync(groupNames, methodName, args, cancellationToken));

    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendGroupExceptAsync(groupName, methodName, args, excludedConnectionIds, cancellationToken));

    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendUserAsync(userId, methodName, args, cancellationToken));

    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.SendUsersAsync(userIds, methodName, args, cancellationToken));

    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.AddToGroupAsync(connectionId, groupName, cancellationToken));

    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        Bounded(_backplane.RemoveFromGroupAsync(connectionId, groupName, cancellationToken));

    // A client result waits on the client, as long as the caller's token allows: not bounded here.
    public override Task<T> InvokeConnectionAsync<T>(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken) =>
        _backplane.InvokeConnectionAsync<T>(connectionId, methodName, args, cancellationToken);

    public override Task SetConnectionResultAsync(string connectionId, CompletionMessage result) =>
        _backplane.SetConnectionResultAsync(connectionId, result);

    public override bool TryGetReturnType(string invocationId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Type? type) =>
        _backplane.TryGetReturnType(invocationId, out type);

    public void Dispose()
    {
        _redis.Restored -= OnRedisRestored;
        DisposeBackplane(); // when the host never ran
        _handingOver.Dispose();
    }

    private void DisposeBackplane()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            _backplane.Dispose();
        }
        catch (ObjectDisposedException)
        {
            // The shared multiplexer was closed already: Redis drops the subscriptions with the socket.
        }
    }

    /// <summary>
    /// A call that may wait on Redis, given up after the operation timeout: the backplane's first use
    /// waits for Redis to be up, however long that takes.
    /// </summary>
    private Task Bounded(Task call) => call.WaitAsync(_redis.OperationTimeout);
}

// Outside the generic type, so that there is one log class, not one per hub.
internal static partial class RedisBackplaneLog
{
    [LoggerMessage(1311, LogLevel.Warning, "Connection {ConnectionId} is served by this instance only until Redis is back: {Reason}", EventName = "BackplaneRegistrationDeferred")]
    public static partial void RegistrationDeferred(ILogger logger, string connectionId, string reason);
}
