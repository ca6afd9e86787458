using StackExchange.Redis;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// The backplane's pub/sub on the instance's shared multiplexer. A channel can be subscribed before Redis has ever
/// answered (the multiplexer connects in the background): it is kept here and subscribed once the multiplexer exists.
/// From then on StackExchange.Redis itself re-subscribes every channel after a reconnect; a probe round trip after
/// each (re)connect confirms the subscriptions are in place and raises <see cref="Connected"/>.
/// </summary>
internal sealed partial class RedisSubscriptions : IDisposable
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(100);
    private const int MaxProbes = 100;

    private readonly RedisConnection _redis;
    private readonly RedisBackplaneChannels _channels;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    // One handler per channel, so a re-subscribe can never deliver a message twice.
    private readonly Dictionary<RedisChannel, Action<RedisChannel, RedisValue>> _handlers = [];
    private readonly CancellationTokenSource _disposed = new();
    // Set once, under the lock; read without it.
    private volatile ConnectionMultiplexer? _multiplexer;
    private volatile ISubscriber? _subscriber;
    private long _probeAttempt;
    private volatile bool _isConnected;

    public RedisSubscriptions(RedisConnection redis, RedisBackplaneChannels channels, TimeProvider time, ILogger logger)
    {
        _redis = redis;
        _channels = channels;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Raised each time the backplane is (re)connected: every channel is subscribed and a message this instance
    /// published has come back. Raised on a StackExchange.Redis or thread-pool thread.
    /// </summary>
    public event Action? Connected;

    /// <summary>Whether the last (re)connect was confirmed and no connection to Redis has failed since.</summary>
    public bool IsConnected => _isConnected;

    /// <summary>Whether a publish can succeed now: false until the multiplexer exists and while it is disconnected.</summary>
    public bool CanPublish => _multiplexer?.IsConnected == true;

    /// <summary>Starts subscribing once the multiplexer exists. Call after the channels every instance needs are added.</summary>
    public void Start() => _ = AttachAsync();

    /// <summary>
    /// Subscribes <paramref name="channel"/>. The task ends when Redis confirms; at once when Redis is not reachable,
    /// in which case the subscription is made when it is.
    /// </summary>
    public Task SubscribeAsync(RedisChannel channel, Action<RedisChannel, RedisValue> handler)
    {
        lock (_gate)
        {
            if (!_handlers.TryAdd(channel, handler))
            {
                throw new InvalidOperationException($"Channel '{channel}' is already subscribed.");
            }

            return _subscriber?.SubscribeAsync(channel, handler) ?? Task.CompletedTask;
        }
    }

    public Task UnsubscribeAsync(RedisChannel channel)
    {
        lock (_gate)
        {
            if (!_handlers.Remove(channel, out var handler))
            {
                return Task.CompletedTask;
            }

            // With the handler: other parts of the gateway share this multiplexer, and only this subscription goes.
            return _subscriber?.UnsubscribeAsync(channel, handler) ?? Task.CompletedTask;
        }
    }

    /// <summary>
    /// Publishes <paramref name="payload"/> and returns how many Redis clients received it. Fails at once when Redis
    /// is not connected, and after <see cref="RedisConnection.OperationTimeout"/> when it does not answer.
    /// </summary>
    public Task<long> PublishAsync(RedisChannel channel, byte[] payload) =>
        _subscriber is { } subscriber
            ? _redis.WithTimeout(subscriber.PublishAsync(channel, payload))
            : Task.FromException<long>(new RedisUnavailableException("Redis has not been reachable since this instance started; it keeps retrying."));

    private async Task AttachAsync()
    {
        ConnectionMultiplexer multiplexer;
        try
        {
            multiplexer = await _redis.Multiplexer.WaitAsync(_disposed.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (Exception e)
        {
            Log.MultiplexerFailed(_logger, e);
            return;
        }

        Task[] subscribed;
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return;
            }

            multiplexer.ConnectionFailed += OnConnectionFailed;
            multiplexer.ConnectionRestored += OnConnectionRestored;
            _multiplexer = multiplexer;
            _subscriber = multiplexer.GetSubscriber();
            subscribed = new Task[_handlers.Count];
            var i = 0;
            foreach (var (channel, handler) in _handlers)
            {
                subscribed[i++] = _subscriber.SubscribeAsync(channel, handler);
            }
        }

        try
        {
            await Task.WhenAll(subscribed).WaitAsync(_redis.OperationTimeout, _time, _disposed.Token);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // They stay registered with the multiplexer, which subscribes them again when it reconnects.
            Log.SubscribeFailed(_logger, e.Message);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await ConfirmAsync();
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) => _isConnected = false;

    // Raised for the subscription connection after StackExchange.Redis has queued its re-subscriptions on it, and
    // for the interactive one that publishes; either may come back last, and a newer probe replaces an older one.
    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e) => _ = ConfirmAsync();

    /// <summary>
    /// Subscribes a fresh probe channel and publishes to it until the message comes back. Redis runs a client's
    /// commands in order, so the probe's subscription is confirmed after every re-subscription queued before it,
    /// and its message coming back proves publishing works too.
    /// </summary>
    private async Task ConfirmAsync()
    {
        var subscriber = _subscriber!;
        var attempt = Interlocked.Increment(ref _probeAttempt);
        var probe = _channels.Probe(_redis.InstanceId, attempt);
        var echoed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action<RedisChannel, RedisValue> onEcho = (_, _) => echoed.TrySetResult();
        try
        {
            await subscriber.SubscribeAsync(probe, onEcho).WaitAsync(_redis.OperationTimeout, _time, _disposed.Token);
            for (var i = 0; i < MaxProbes && !echoed.Task.IsCompleted && attempt == Interlocked.Read(ref _probeAttempt) && !_disposed.IsCancellationRequested; i++)
            {
                try
                {
                    await _redis.WithTimeout(subscriber.PublishAsync(probe, RedisValue.EmptyString));
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    // The interactive connection is not back yet: probe again.
                }

                await Task.WhenAny(echoed.Task, Task.Delay(ProbeInterval, _time, _disposed.Token));
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Log.SubscribeFailed(_logger, e.Message);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        finally
        {
            try
            {
                subscriber.Unsubscribe(probe, onEcho, CommandFlags.FireAndForget);
            }
            catch (ObjectDisposedException)
            {
                // Shutting down: the multiplexer took the probe's subscription with it.
            }
        }

        if (attempt != Interlocked.Read(ref _probeAttempt))
        {
            return;
        }

        if (!echoed.Task.IsCompleted)
        {
            Log.NotConfirmed(_logger);
            return;
        }

        int count;
        lock (_gate)
        {
            count = _handlers.Count;
        }

        _isConnected = true;
        Log.Connected(_logger, count);
        Connected?.Invoke();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return;
            }

            _disposed.Cancel();
            if (_multiplexer is { } multiplexer)
            {
                multiplexer.ConnectionFailed -= OnConnectionFailed;
                multiplexer.ConnectionRestored -= OnConnectionRestored;
                try
                {
                    foreach (var (channel, handler) in _handlers)
                    {
                        _subscriber!.Unsubscribe(channel, handler, CommandFlags.FireAndForget);
                    }
                }
                catch (ObjectDisposedException)
                {
                    // The multiplexer went first; its subscriptions went with it.
                }
            }

            _handlers.Clear();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Information, "Redis backplane connected: {Count} channels subscribed.")]
        public static partial void Connected(ILogger logger, int count);

        [LoggerMessage(21, LogLevel.Warning, "Subscribing to Redis did not complete ({Reason}); the subscription is kept and made when Redis is back.")]
        public static partial void SubscribeFailed(ILogger logger, string reason);

        [LoggerMessage(22, LogLevel.Warning, "Redis came back but the backplane's probe message did not; waiting for the next reconnect.")]
        public static partial void NotConfirmed(ILogger logger);

        [LoggerMessage(23, LogLevel.Error, "The Redis connection could not be created; the backplane only serves this instance's connections.")]
        public static partial void MultiplexerFailed(ILogger logger, Exception exception);
    }
}
