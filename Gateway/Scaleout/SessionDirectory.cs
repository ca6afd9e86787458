using System.Collections.Concurrent;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Every hub connection by its <c>socketIOClientId</c>, on an <see cref="IDistributedCache"/>: Redis
/// when instances share the work, memory when one runs alone, through the same code.
/// <para>
/// Liveness is per instance, not per session, so its cost does not grow with sessions: an entry is
/// written when its connection starts and when its upstream socket changes, and names its instance;
/// the instance keeps one key of its own alive (<c>Gateway:Redis:SessionTtl</c>, renewed every third
/// of it). An entry whose instance key is gone is not found, and expires by itself after
/// <see cref="EntryLifetime"/>; the entry of a connection that outlives half of that is rewritten.
/// </para>
/// This instance's own connections are answered from memory and never wait on Redis.
/// </summary>
internal sealed partial class SessionDirectory : ISessionDirectory, IHostedService, IAsyncDisposable
{
    /// <summary>How long an entry outlives a dead instance, at most: long, since only a crash leaves entries behind.</summary>
    internal static readonly TimeSpan EntryLifetime = TimeSpan.FromHours(24);

    // Writes in flight at once when this instance writes its sessions again after Redis came back:
    // enough to keep the one connection's pipeline full; more would only queue in the multiplexer.
    private const int RepublishParallelism = 64;

    private readonly ConcurrentDictionary<string, LocalSession> _local = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _unremoved = new(StringComparer.Ordinal);
    private readonly IDistributedCache _cache;
    private readonly RedisConnection? _redis;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IOptions<GatewayOptions> _options;
    private readonly DistributedCacheEntryOptions _entryOptions = new() { AbsoluteExpirationRelativeToNow = EntryLifetime };
    private readonly byte[] _instanceValue;
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _republish;
    private bool _instanceWritten;
    private long _restoredAt;
    private Task _running = Task.CompletedTask;

    /// <param name="redis">The Redis connection when the cache is Redis's; null when it is memory.</param>
    public SessionDirectory(IDistributedCache cache, IOptions<GatewayOptions> options, TimeProvider time, ILogger<SessionDirectory> logger, RedisConnection? redis = null)
    {
        _cache = cache;
        _redis = redis;
        _time = time;
        _logger = logger;
        _options = options; // read where used: the container builds this before start-up validates them
        InstanceId = $"{Environment.MachineName}-{Guid.NewGuid():N}"[..^24];
        _instanceValue = System.Text.Encoding.UTF8.GetBytes(InstanceId);
        if (redis is not null)
        {
            redis.Restored += OnRedisRestored;
        }
    }

    /// <summary>This instance's id in the directory.</summary>
    public string InstanceId { get; }

    public int LocalCount => _local.Count;

    public IEnumerable<BridgedConnection> LocalConnections => _local.Values.Select(session => session.Connection);

    public bool TryGetLocal(string socketIOClientId, out BridgedConnection connection)
    {
        var found = _local.TryGetValue(socketIOClientId, out var session);
        connection = session?.Connection!;
        return found;
    }

    public async Task AddAsync(BridgedConnection connection)
    {
        var clientId = connection.SocketIOClientId;
        var session = new LocalSession(connection);
        _local[clientId] = session;
        if (connection.Session is { } upstream)
        {
            upstream.SocketChanged += changed =>
            {
                // A change that arrives after the connection ended must not bring its entry back.
                if (_local.TryGetValue(clientId, out var current) && ReferenceEquals(current, session))
                {
                    Interlocked.Increment(ref session.Version);
                    _ = WriteAsync(session);
                }
            };
        }

        await WriteAsync(session);
    }

    public async Task RemoveAsync(BridgedConnection connection)
    {
        var clientId = connection.SocketIOClientId;
        if (!_local.TryGetValue(clientId, out var session) || !ReferenceEquals(session.Connection, connection)
            || !_local.TryRemove(KeyValuePair.Create(clientId, session)))
        {
            return;
        }

        // Left behind, the entry would still be found while this instance lives: removed once Redis answers.
        if (!await TryAsync(() => _cache.RemoveAsync(SessionKey(clientId)), clientId))
        {
            _unremoved[clientId] = 0;
        }
    }

    public async ValueTask<SessionLookup> FindAsync(string socketIOClientId, CancellationToken cancellationToken)
    {
        if (_local.TryGetValue(socketIOClientId, out var local))
        {
            return SessionLookup.Found(SessionLocation.Of(local.Connection)); // ours: no need to ask Redis
        }

        if (_redis is { IsConnected: false })
        {
            return SessionLookup.Unavailable;
        }

        try
        {
            if (await GetAsync(SessionKey(socketIOClientId), cancellationToken) is { } bytes
                && SessionEntry.Read(bytes) is { } entry
                && entry.Instance != InstanceId
                && await GetAsync(InstanceKey(entry.Instance), cancellationToken) is not null)
            {
                return SessionLookup.Found(entry.Location);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Log.LookupFailed(_logger, e.Message);
            return SessionLookup.Unavailable;
        }

        // Just after Redis came back (empty, perhaps), other instances may still be writing their
        // sessions again; a live one has done so within its TTL. A miss before that is no proof, and
        // the caller had better retry than forward an id to where no event would arrive.
        var restoredAt = Volatile.Read(ref _restoredAt);
        return restoredAt != 0 && _time.GetElapsedTime(restoredAt) < Ttl
            ? SessionLookup.Unavailable
            : SessionLookup.NotFound;
    }

    private Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) =>
        _cache.GetAsync(key, cancellationToken).WaitAsync(Timeout, cancellationToken);

    private async Task WriteAsync(LocalSession session)
    {
        var version = Volatile.Read(ref session.Version);
        var entry = SessionEntry.Write(session.Connection, InstanceId);
        if (await TryAsync(() => _cache.SetAsync(SessionKey(session.Connection.SocketIOClientId), entry, _entryOptions), session.Connection.SocketIOClientId))
        {
            session.Written(version, _time.GetTimestamp());
        }
    }

    /// <summary>A write to the cache that gives up at once while Redis is down and after the operation timeout otherwise; false when it failed (logged).</summary>
    private async Task<bool> TryAsync(Func<Task> write, string what)
    {
        if (_redis is { IsConnected: false })
        {
            return false; // written again once Redis is back
        }

        try
        {
            await write().WaitAsync(Timeout);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Log.WriteFailed(_logger, what, e.Message);
            return false;
        }
    }

    private void OnRedisRestored()
    {
        Volatile.Write(ref _restoredAt, _time.GetTimestamp());
        Volatile.Write(ref _republish, 1); // Redis may have restarted empty
        Volatile.Read(ref _wake).TrySetResult();
    }

    private TimeSpan Ttl => _options.Value.Redis.SessionTtl;

    private TimeSpan Timeout => _options.Value.Redis.OperationTimeout;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_redis is not null)
        {
            // Serving before Redis answers would hide other instances' sessions for a moment; waiting
            // longer than the operation timeout would let a Redis that is down hold up the start.
            _ = WakeOnceConnectedAsync(_redis);
            try
            {
                await _redis.WhenFirstConnectedAsync().WaitAsync(Timeout, cancellationToken);
            }
            catch (TimeoutException)
            {
            }
        }

        _running = Task.Run(KeepAliveAsync, CancellationToken.None);
    }

    /// <summary>Sessions added before Redis first answered are written as soon as it does.</summary>
    private async Task WakeOnceConnectedAsync(RedisConnection redis)
    {
        await redis.WhenFirstConnectedAsync();
        Volatile.Read(ref _wake).TrySetResult();
    }

    /// <summary>Renews this instance's key every heartbeat, and writes what Redis is missing: at once when Redis comes back.</summary>
    private async Task KeepAliveAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            // Replaced before the pass reads what to do, so a restore at any moment is seen by this pass or wakes the next.
            var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _wake, wake);
            try
            {
                await SyncAsync();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.KeepAliveFailed(_logger, e);
            }

            await Task.WhenAny(wake.Task, Task.Delay(Ttl / 3, _time, stopping));
        }
    }

    private async Task SyncAsync()
    {
        if (_redis is { IsConnected: false })
        {
            return; // the restore wakes us
        }

        // A missing key that was written means Redis lost it (a restart, or this instance stalled
        // past its TTL): every entry is written again, restore event or not.
        var present = await TryGetInstanceAsync();
        var instanceOptions = new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = Ttl };
        if (present is null || !await TryAsync(() => _cache.SetAsync(InstanceKey(InstanceId), _instanceValue, instanceOptions), "this instance's key"))
        {
            return;
        }

        var republish = Interlocked.Exchange(ref _republish, 0) == 1 || (_instanceWritten && present == false);
        _instanceWritten = true;
        var rewriteBefore = _time.GetTimestamp() - (long)(EntryLifetime.TotalSeconds / 2 * _time.TimestampFrequency);
        var due = _local.Values.Where(session => republish || session.NeedsWrite(rewriteBefore));
        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = RepublishParallelism }, async (session, _) => await WriteAsync(session));
        foreach (var clientId in _unremoved.Keys)
        {
            if (await TryAsync(() => _cache.RemoveAsync(SessionKey(clientId)), clientId))
            {
                _unremoved.TryRemove(clientId, out _);
            }
        }
    }

    private async Task<bool?> TryGetInstanceAsync()
    {
        try
        {
            return await GetAsync(InstanceKey(InstanceId), CancellationToken.None) is not null;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Log.WriteFailed(_logger, "this instance's key", e.Message);
            return null;
        }
    }

    // The prefix is the directory's, not the cache's InstanceName: the cache is built before start-up
    // validates the options, and reading them then would throw outside the start-up that reports it.
    private string SessionKey(string socketIOClientId) => $"{_options.Value.Redis.KeyPrefix}:session:{socketIOClientId}";

    /// <summary>The key that exists while instance <paramref name="instanceId"/> is alive.</summary>
    internal string InstanceKey(string instanceId) => $"{_options.Value.Redis.KeyPrefix}:instance:{instanceId}";

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        // The instance key is left to expire: connections still open while the host stops remain findable.
        await _running;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _stopping.Dispose();
    }

    /// <summary>A connection of this instance, and what of it the directory holds.</summary>
    private sealed class LocalSession(BridgedConnection connection)
    {
        /// <summary>Bumped by every change to write (the upstream socket).</summary>
        public int Version;

        private readonly Lock _lock = new();
        private int _writtenVersion = -1;
        private long _writtenAt;

        public BridgedConnection Connection { get; } = connection;

        public void Written(int version, long timestamp)
        {
            lock (_lock)
            {
                if (version >= _writtenVersion)
                {
                    _writtenVersion = version;
                    _writtenAt = timestamp;
                }
            }
        }

        /// <summary>True when the directory misses its latest state, or its entry was written before <paramref name="timestamp"/>.</summary>
        public bool NeedsWrite(long timestamp)
        {
            lock (_lock)
            {
                return _writtenVersion != Volatile.Read(ref Version) || _writtenAt < timestamp;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1321, LogLevel.Debug, "Session directory: writing {Key} failed: {Reason}", EventName = "DirectoryWriteFailed")]
        public static partial void WriteFailed(ILogger logger, string key, string reason);

        [LoggerMessage(1322, LogLevel.Warning, "Session directory: a lookup in Redis failed: {Reason}", EventName = "DirectoryLookupFailed")]
        public static partial void LookupFailed(ILogger logger, string reason);

        [LoggerMessage(1323, LogLevel.Error, "Session directory: keeping this instance's entries alive failed; retrying.", EventName = "DirectoryKeepAliveFailed")]
        public static partial void KeepAliveFailed(ILogger logger, Exception exception);
    }
}
