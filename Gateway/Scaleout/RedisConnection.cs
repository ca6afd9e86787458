using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// The instance's one Redis multiplexer. It connects in the background and keeps retrying, so a
/// gateway whose Redis is down at start still serves its own connections; callers check
/// <see cref="IsConnected"/> or bound their waits with <see cref="WithTimeout{T}"/>.
/// </summary>
internal sealed partial class RedisConnection : IAsyncDisposable
{
    private readonly RedisOptions _options;
    private readonly ILogger _logger;
    private readonly Task<ConnectionMultiplexer> _multiplexer;

    public RedisConnection(IOptions<GatewayOptions> options, ILogger<RedisConnection> logger)
    {
        _options = options.Value.Redis;
        _logger = logger;
        _multiplexer = ConnectAsync();
    }

    /// <summary>This instance's id: names it in the session directory and on the backplane.</summary>
    public string InstanceId { get; } = $"{Environment.MachineName}-{Guid.NewGuid():N}"[..^20];

    public string KeyPrefix => _options.KeyPrefix;

    public TimeSpan OperationTimeout => _options.OperationTimeout;

    public bool IsConnected => _multiplexer.IsCompletedSuccessfully && _multiplexer.Result.IsConnected;

    /// <summary>Raised when the connection to Redis is back after a loss, so state kept there can be written again.</summary>
    public event Action? Restored;

    /// <summary>The multiplexer, once the first connection attempt has returned (it may still be disconnected).</summary>
    public Task<ConnectionMultiplexer> Multiplexer => _multiplexer;

    public IDatabase? Database => IsConnected ? _multiplexer.Result.GetDatabase() : null;

    private async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var configuration = ConfigurationOptions.Parse(_options.Configuration!);
        configuration.AbortOnConnectFail = false; // keep retrying in the background instead of failing start-up
        configuration.ConnectTimeout = (int)_options.OperationTimeout.TotalMilliseconds;
        configuration.SyncTimeout = (int)_options.OperationTimeout.TotalMilliseconds;
        configuration.ConnectRetry = int.MaxValue;
        configuration.ClientName ??= "tromai-gateway";

        var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        multiplexer.ConnectionFailed += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                Log.Lost(_logger, e.FailureType.ToString());
            }
        };
        multiplexer.ConnectionRestored += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                Log.Restored(_logger);
                Restored?.Invoke();
            }
        };

        if (!multiplexer.IsConnected)
        {
            Log.Lost(_logger, "not reachable at start; retrying in the background");
        }

        return multiplexer;
    }

    /// <summary>A Redis call that gives up after <see cref="OperationTimeout"/>: no request waits on Redis without bound.</summary>
    public async Task<T> WithTimeout<T>(Task<T> call)
    {
        try
        {
            return await call.WaitAsync(_options.OperationTimeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Redis did not answer within {_options.OperationTimeout.TotalMilliseconds:0} ms (Gateway:Redis:OperationTimeout).");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_multiplexer.IsCompletedSuccessfully)
        {
            await _multiplexer.Result.CloseAsync(allowCommandsToComplete: false);
            _multiplexer.Result.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Redis connection lost ({Reason}); this instance keeps serving its own connections.")]
        public static partial void Lost(ILogger logger, string reason);

        [LoggerMessage(2, LogLevel.Information, "Redis connection restored.")]
        public static partial void Restored(ILogger logger);
    }
}
