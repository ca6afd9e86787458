using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// The instance's one connection to Redis, shared by the SignalR backplane, the session directory's
/// cache and anything else that keeps state there. It connects in the background and keeps
/// retrying, so an instance whose Redis is down at start still starts and serves its own
/// connections. Nothing waits on it without bound: while it is disconnected every command fails at
/// once, and while it is connected a command gives up after <c>Gateway:Redis:OperationTimeout</c>.
/// </summary>
internal sealed partial class RedisConnection : IAsyncDisposable
{
    // Reconnect attempts run on the multiplexer's heartbeat. With its defaults (1 s heartbeat, a
    // backoff growing to 10 s) a reconnect after a longer outage waits seconds; a short heartbeat and a
    // flat retry interval had every session findable again 0.1–0.7 s after Redis answered (README).
    private const int HeartbeatMilliseconds = 250;
    private const int ReconnectIntervalMilliseconds = 250;

    private readonly IOptions<GatewayOptions> _options;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<IConnectionMultiplexer> _firstConnected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lazy<Task<IConnectionMultiplexer>> _multiplexer;
    private int _lost;

    public RedisConnection(IOptions<GatewayOptions> options, ILogger<RedisConnection> logger)
    {
        _options = options;
        _logger = logger;

        // Started at first use (the backplane or the directory starting), not when the container builds:
        // reading the options then would throw their validation error outside the start-up that reports it.
        _multiplexer = new(() => Task.Run(() => ConnectAsync(Configure(options.Value.Redis))));
    }

    /// <summary>Longest wait for one Redis call (<c>Gateway:Redis:OperationTimeout</c>).</summary>
    public TimeSpan OperationTimeout => _options.Value.Redis.OperationTimeout;

    public bool IsConnected => _multiplexer.Value is { IsCompletedSuccessfully: true } multiplexer && multiplexer.Result.IsConnected;

    /// <summary>
    /// Raised when the connection is back after a loss (or up for the first time after a failed start):
    /// state this instance keeps in Redis may have to be written again, since Redis may have restarted empty.
    /// </summary>
    public event Action? Restored;

    /// <summary>The multiplexer once created, which takes at most the operation timeout; it may be disconnected and reconnecting.</summary>
    public Task<IConnectionMultiplexer> GetMultiplexerAsync() => _multiplexer.Value;

    /// <summary>The multiplexer once it has been connected (both its connections). Waits as long as Redis is down: for background work only.</summary>
    public Task<IConnectionMultiplexer> WhenFirstConnectedAsync()
    {
        _ = _multiplexer.Value;
        return _firstConnected.Task;
    }

    /// <summary>True once the multiplexer has been connected (both its connections), whatever it is now.</summary>
    public bool HasConnected => _firstConnected.Task.IsCompleted;

    /// <summary>The database to call now, or null while Redis is not connected.</summary>
    public IDatabase? Database => IsConnected ? _multiplexer.Value.Result.GetDatabase() : null;

    /// <summary>The multiplexer's configuration: the configured string, with the gateway's outage behaviour on top.</summary>
    internal static ConfigurationOptions Configure(RedisOptions options)
    {
        var configuration = ConfigurationOptions.Parse(options.Configuration!);
        var timeout = (int)options.OperationTimeout.TotalMilliseconds;
        configuration.AbortOnConnectFail = false; // keep retrying in the background instead of failing start-up
        configuration.ConnectTimeout = timeout;
        configuration.SyncTimeout = timeout;
        configuration.AsyncTimeout = timeout;

        // The default queues commands while disconnected until they time out: a lookup would then
        // wait the whole operation timeout to learn what is already known. Fail at once instead.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.HeartbeatInterval = TimeSpan.FromMilliseconds(HeartbeatMilliseconds);
        configuration.ReconnectRetryPolicy = new LinearRetry(ReconnectIntervalMilliseconds);

        // Pub/sub channels (the backplane's) get the key prefix too, so several gateways can share one Redis.
        configuration.ChannelPrefix = RedisChannel.Literal(options.KeyPrefix + ":");
        configuration.ClientName ??= "tromai-gateway";
        return configuration;
    }

    private async Task<IConnectionMultiplexer> ConnectAsync(ConfigurationOptions configuration)
    {
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        multiplexer.ConnectionFailed += (_, e) =>
        {
            if (Interlocked.Exchange(ref _lost, 1) == 0)
            {
                Log.Lost(_logger, e.FailureType.ToString());
            }
        };
        multiplexer.ConnectionRestored += (_, _) => OnConnected(multiplexer);
        if (!FullyConnected(multiplexer))
        {
            Volatile.Write(ref _lost, 1);
            Log.Lost(_logger, "not reachable at start; retrying in the background");
        }

        OnConnected(multiplexer);
        return multiplexer;
    }

    /// <summary>
    /// Back only once both of the multiplexer's connections are: commands go over one, the
    /// backplane's subscriptions over the other, and either may come back first.
    /// </summary>
    private void OnConnected(IConnectionMultiplexer multiplexer)
    {
        if (!FullyConnected(multiplexer))
        {
            return;
        }

        _firstConnected.TrySetResult(multiplexer);
        if (Interlocked.Exchange(ref _lost, 0) == 1)
        {
            Log.Restored(_logger);
            Restored?.Invoke();
        }
    }

    private static bool FullyConnected(IConnectionMultiplexer multiplexer) =>
        multiplexer.IsConnected && multiplexer.GetSubscriber().IsConnected();

    public async ValueTask DisposeAsync()
    {
        if (!_multiplexer.IsValueCreated)
        {
            return;
        }

        try
        {
            var multiplexer = await _multiplexer.Value;
            await multiplexer.CloseAsync(allowCommandsToComplete: false);
            await multiplexer.DisposeAsync();
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // The backplane and the cache dispose the shared multiplexer too, in any order.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1301, LogLevel.Warning, "Redis connection lost ({Reason}); this instance keeps serving its own connections.", EventName = "RedisLost")]
        public static partial void Lost(ILogger logger, string reason);

        [LoggerMessage(1302, LogLevel.Information, "Redis connection restored.", EventName = "RedisRestored")]
        public static partial void Restored(ILogger logger);
    }
}
