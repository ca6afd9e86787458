using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// The session directory shared by every gateway instance. Each entry is a Redis hash
/// (<c>{prefix}:session:{connectionId}</c> = socket, destination, instance) under a TTL its owner
/// refreshes, so the entries of an instance that dies expire by themselves. Local sessions are
/// answered from memory and never wait on Redis; a Redis outage only hides other instances' sessions.
/// </summary>
internal sealed partial class RedisSessionDirectory : ISessionDirectory, IHostedService, IAsyncDisposable
{
    private readonly MemorySessionDirectory _local = new();
    private readonly RedisConnection _redis;
    private readonly RedisOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Task _refreshing = Task.CompletedTask;

    public RedisSessionDirectory(RedisConnection redis, IOptions<GatewayOptions> options, ILogger<RedisSessionDirectory> logger)
    {
        _redis = redis;
        _options = options.Value.Redis;
        _logger = logger;
        _redis.Restored += () => _ = RefreshAllAsync(); // Redis may have come back empty
    }

    public int LocalCount => _local.LocalCount;

    public IEnumerable<BridgedConnection> LocalConnections => _local.LocalConnections;

    public async Task AddAsync(BridgedConnection connection)
    {
        await _local.AddAsync(connection);
        var clientId = connection.SocketIOClientId;
        if (connection.Session is { } session)
        {
            session.SocketChanged += changed =>
            {
                // A change that arrives after the connection ended must not bring its entry back.
                if (_local.TryGetLocal(clientId, out var current) && ReferenceEquals(current, connection))
                {
                    _ = WriteAsync(connection);
                }
            };
        }

        await WriteAsync(connection);
    }

    public async Task RemoveAsync(BridgedConnection connection)
    {
        await _local.RemoveAsync(connection);
        await TryAsync(db => db.KeyDeleteAsync(Key(connection.SocketIOClientId)), connection.SocketIOClientId);
    }

    public async ValueTask<SessionLookup> FindAsync(string socketIOClientId, CancellationToken cancellationToken)
    {
        if (_local.TryGetLocal(socketIOClientId, out var connection))
        {
            return SessionLookup.Found(SessionLocation.Of(connection)); // ours: no need to ask Redis
        }

        var fields = await TryAsync(db => db.HashGetAsync(Key(socketIOClientId), [Fields.Connection, Fields.Owner, Fields.Socket, Fields.Destination]), socketIOClientId);
        if (fields is null)
        {
            return SessionLookup.Unavailable;
        }

        if (fields[0].IsNull)
        {
            return SessionLookup.NotFound;
        }

        var owner = (string?)fields[1];
        var socketId = (string?)fields[2];
        var destination = (string?)fields[3];
        return SessionLookup.Found(new SessionLocation(
            (string)fields[0]!,
            string.IsNullOrEmpty(owner) ? null : owner,
            string.IsNullOrEmpty(socketId) ? null : socketId,
            string.IsNullOrEmpty(destination) ? null : new Uri(destination)));
    }

    public bool TryGetLocal(string socketIOClientId, out BridgedConnection connection) => _local.TryGetLocal(socketIOClientId, out connection);

    private Task<bool> WriteAsync(BridgedConnection connection)
    {
        var connectionId = connection.SocketIOClientId;
        var key = Key(connectionId);
        HashEntry[] entry =
        [
            new(Fields.Connection, connection.ConnectionId),
            new(Fields.Owner, connection.Owner ?? ""),
            new(Fields.Socket, connection.Session?.SocketId ?? ""),
            new(Fields.Destination, connection.Session?.Destination?.ToString() ?? ""),
            new(Fields.Instance, _redis.InstanceId),
        ];
        return TryAsync(async db =>
        {
            var batch = db.CreateBatch();
            var set = batch.HashSetAsync(key, entry);
            var expire = batch.KeyExpireAsync(key, _options.SessionTtl);
            batch.Execute();
            await Task.WhenAll(set, expire);
            return true;
        }, connectionId);
    }

    /// <summary>Rewrites every local entry with a fresh TTL: refreshes them, and restores them after Redis lost its data.</summary>
    private async Task RefreshAllAsync()
    {
        foreach (var connection in _local.LocalConnections)
        {
            await WriteAsync(connection);
        }
    }

    private async Task<T?> TryAsync<T>(Func<IDatabase, Task<T>> call, string connectionId)
    {
        var db = _redis.Database;
        if (db is null)
        {
            return default; // Redis is down: only this instance's sessions can be found until it is back
        }

        try
        {
            return await _redis.WithTimeout(call(db));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Log.DirectoryUnavailable(_logger, connectionId, e.Message);
            return default;
        }
    }

    private RedisKey Key(string connectionId) => $"{_redis.KeyPrefix}:session:{connectionId}";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _refreshing = RefreshPeriodicallyAsync();
        return Task.CompletedTask;
    }

    private async Task RefreshPeriodicallyAsync()
    {
        using var timer = new PeriodicTimer(_options.SessionTtl / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                await RefreshAllAsync();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _refreshing;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await StopAsync(CancellationToken.None);
        }
    }

    private static class Fields
    {
        public static readonly RedisValue Connection = "connection";
        public static readonly RedisValue Owner = "owner";
        public static readonly RedisValue Socket = "socket";
        public static readonly RedisValue Destination = "destination";
        public static readonly RedisValue Instance = "instance";
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Session directory in Redis unavailable for {ConnectionId}: {Reason}")]
        public static partial void DirectoryUnavailable(ILogger logger, string connectionId, string reason);
    }
}
