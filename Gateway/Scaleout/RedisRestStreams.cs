using System.Collections.Concurrent;
using System.Threading.Channels;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// REST streams kept across instances (<see cref="IRemoteRestStreams"/>) over Redis pub/sub. Each instance
/// listens on one channel of its own, <c>rest-streams:{InstanceId}</c>: there it gets the <c>begin</c> and
/// <c>end</c> of streams it records for its connections, and the replies to the <c>begin</c>s it sent. The
/// channel is read as one ordered queue, so a stream's <c>end</c> is never handled before its <c>begin</c>
/// (its sender publishes the end later, over the same connection). Messages come only from instances
/// sharing this Redis, trusted as the session directory is; they are checked for shape all the same.
/// </summary>
internal sealed partial class RedisRestStreams : IRemoteRestStreams, IHostedService, IAsyncDisposable
{
    // Between attempts to subscribe while Redis refuses: as RedisConnection's reconnect interval.
    private static readonly TimeSpan SubscribeRetry = TimeSpan.FromMilliseconds(250);

    /// <summary>The <c>begin</c>s this instance waits on, by stream id: completed with null once begun, with the reason when refused.</summary>
    private readonly ConcurrentDictionary<string, TaskCompletionSource<string?>> _waiting = new(StringComparer.Ordinal);
    private readonly RedisConnection _redis;
    private readonly SessionDirectory _directory;
    private readonly RestStreams _streams;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _listening = Task.CompletedTask;
    private ChannelMessageQueue? _queue;

    public RedisRestStreams(RedisConnection redis, SessionDirectory directory, RestStreams streams, TimeProvider time, ILogger<RedisRestStreams> logger)
    {
        _redis = redis;
        _directory = directory;
        _streams = streams;
        _time = time;
        _logger = logger;
    }

    private TimeSpan Timeout => _redis.OperationTimeout;

    private static RedisChannel ChannelOf(string instance) => RedisChannel.Literal($"rest-streams:{instance}");

    public async Task<string?> BeginAsync(string instance, string socketIOClientId, string chatflowId, string? chatId, CancellationToken cancellationToken)
    {
        var streamId = StreamIds.New();
        if (Volatile.Read(ref _queue) is null)
        {
            // Its reply would come to a channel nobody reads yet.
            Log.NotKept(_logger, instance, "this instance has not subscribed to its own channel on Redis yet");
            return null;
        }

        var reply = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[streamId] = reply;
        var started = _time.GetTimestamp();
        var published = false;
        try
        {
            var subscriber = (await _redis.GetMultiplexerAsync().WaitAsync(Timeout, _time, cancellationToken)).GetSubscriber();
            var begin = RestStreamMessage.Begin(streamId, socketIOClientId, chatflowId, chatId, _directory.InstanceId);
            published = true; // from here on the begin may reach it, however the publish ends
            if (await subscriber.PublishAsync(ChannelOf(instance), begin).WaitAsync(Timeout, _time, cancellationToken) == 0)
            {
                Log.NotKept(_logger, instance, "no instance listens on its channel on Redis (it stopped, or lost Redis)");
                return null;
            }

            var remaining = Timeout - _time.GetElapsedTime(started);
            if (await reply.Task.WaitAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, _time, cancellationToken) is { } refusal)
            {
                Log.NotKept(_logger, instance, $"it refused: {refusal}");
                return null;
            }

            return streamId;
        }
        catch (Exception e) when (e is TimeoutException or RedisException or OperationCanceledException)
        {
            Log.NotKept(_logger, instance, e switch
            {
                TimeoutException => $"it did not answer within {Timeout} (Gateway:Redis:OperationTimeout)",
                OperationCanceledException => "this instance is stopping",
                _ => $"Redis: {e.Message}",
            });
            if (published)
            {
                // Should the begin reach it late, its recording must not wait for an end that nobody would send.
                _ = TryEndAsync(instance, streamId, RestAnswer.Failed("The gateway instance that forwarded the prediction did not keep its stream (Gateway:Redis:OperationTimeout)."));
            }

            return null;
        }
        finally
        {
            _waiting.TryRemove(streamId, out _);
        }
    }

    public async Task EndAsync(string instance, string streamId, RestAnswer answer)
    {
        var subscriber = (await _redis.GetMultiplexerAsync().WaitAsync(Timeout, _time)).GetSubscriber();
        await subscriber.PublishAsync(ChannelOf(instance), RestStreamMessage.End(streamId, answer)).WaitAsync(Timeout, _time);
    }

    private async Task TryEndAsync(string instance, string streamId, RestAnswer answer)
    {
        try
        {
            await EndAsync(instance, streamId, answer);
        }
        catch (Exception e) when (e is TimeoutException or RedisException)
        {
            Log.PublishFailed(_logger, instance, streamId, e.Message);
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _listening = Task.Run(ListenAsync, CancellationToken.None);

        // As the directory does: not serving before Redis answers, nor letting a Redis that is down hold up the start.
        try
        {
            await _subscribed.Task.WaitAsync(Timeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
        }
    }

    private async Task ListenAsync()
    {
        var stopping = _stopping.Token;
        try
        {
            var queue = await SubscribeAsync(stopping);
            Volatile.Write(ref _queue, queue);
            _subscribed.TrySetResult();

            // The multiplexer subscribes again by itself after Redis comes back; this queue goes on.
            while (true)
            {
                var received = await queue.ReadAsync(stopping);
                try
                {
                    Handle(received);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // One message must not end the listening for every later stream.
                    Log.HandleFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (ChannelClosedException)
        {
            // Unsubscribed: this instance is stopping.
        }
    }

    private async Task<ChannelMessageQueue> SubscribeAsync(CancellationToken stopping)
    {
        var subscriber = (await _redis.WhenFirstConnectedAsync().WaitAsync(stopping)).GetSubscriber();
        while (true)
        {
            try
            {
                return await subscriber.SubscribeAsync(ChannelOf(_directory.InstanceId)).WaitAsync(Timeout, _time, stopping);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                Log.SubscribeFailed(_logger, e.Message);
                await Task.Delay(SubscribeRetry, _time, stopping);
            }
        }
    }

    private void Handle(ChannelMessage received)
    {
        if (RestStreamMessage.Read((ReadOnlyMemory<byte>)received.Message) is not { } message)
        {
            Log.Dropped(_logger);
            return;
        }

        switch (message.Kind)
        {
            case RestStreamMessage.BeginKind:
                Begin(message);
                break;
            case RestStreamMessage.EndKind:
                // Not awaited: the barrier before the end waits on the upstream socket, and the queue must not.
                _ = EndAsync(message.StreamId, message.ToAnswer());
                break;
            case RestStreamMessage.BegunKind:
                Complete(message.StreamId, null);
                break;
            case RestStreamMessage.RefusedKind:
                Complete(message.StreamId, message.Error);
                break;
        }
    }

    /// <summary>Another instance forwards a POST for a connection of this one: record its stream here, where its events arrive.</summary>
    private void Begin(RestStreamMessage begin)
    {
        // The connection's own owner is the stream's: the forwarding instance checked that the caller is it.
        string? refusal = !_directory.TryGetLocal(begin.SocketIOClientId!, out var connection)
            ? "the hub connection is no longer on that instance"
            : _streams.Begin(connection, begin.ChatflowId!, begin.ChatId, begin.StreamId) is null
                ? "the hub connection has no upstream session (SSE mode), is ending, or the stream id is taken"
                : null;
        _ = ReplyAsync(begin.ReplyTo!, begin.StreamId, refusal is null ? RestStreamMessage.Begun(begin.StreamId) : RestStreamMessage.Refused(begin.StreamId, refusal));
    }

    private async Task ReplyAsync(string instance, string streamId, byte[] reply)
    {
        try
        {
            var subscriber = (await _redis.GetMultiplexerAsync()).GetSubscriber();
            await subscriber.PublishAsync(ChannelOf(instance), reply).WaitAsync(Timeout, _time);
        }
        catch (Exception e) when (e is TimeoutException or RedisException)
        {
            // Its sender gives up waiting and sends the end anyway, which ends the recording begun here.
            Log.PublishFailed(_logger, instance, streamId, e.Message);
        }
    }

    private async Task EndAsync(string streamId, RestAnswer answer)
    {
        try
        {
            await _streams.EndAsync(streamId, answer);
        }
        catch (Exception e)
        {
            Log.EndFailed(_logger, streamId, e);
        }
    }

    private void Complete(string streamId, string? refusal)
    {
        // A reply after its sender gave up finds nobody waiting: that sender sends the end itself.
        if (_waiting.TryGetValue(streamId, out var waiting))
        {
            waiting.TrySetResult(refusal);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        if (Volatile.Read(ref _queue) is { } queue)
        {
            try
            {
                await queue.UnsubscribeAsync().WaitAsync(Timeout, _time, CancellationToken.None);
            }
            catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
            {
                // Redis is gone or going: the subscription goes with this instance's connection.
            }
        }

        await _listening;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _stopping.Dispose();
    }

    private static partial class Log
    {
        // The hub connection's id is a credential of sorts (it lets a POST stream to that connection): not logged.
        [LoggerMessage(5060, LogLevel.Warning, "A REST prediction for a hub connection of instance {Instance} is forwarded without keeping its stream: {Reason}.", EventName = "RemoteRestStreamNotKept")]
        public static partial void NotKept(ILogger logger, string instance, string reason);

        [LoggerMessage(5061, LogLevel.Debug, "Dropped a malformed message on this instance's REST stream channel.", EventName = "RemoteRestStreamMessageDropped")]
        public static partial void Dropped(ILogger logger);

        [LoggerMessage(5062, LogLevel.Debug, "Could not tell instance {Instance} about REST stream {StreamId}: {Reason}", EventName = "RemoteRestStreamPublishFailed")]
        public static partial void PublishFailed(ILogger logger, string instance, string streamId, string reason);

        [LoggerMessage(5063, LogLevel.Warning, "Ending REST stream {StreamId} as the instance that forwarded its POST reported failed.", EventName = "RemoteRestStreamEndFailed")]
        public static partial void EndFailed(ILogger logger, string streamId, Exception exception);

        [LoggerMessage(5064, LogLevel.Warning, "Subscribing to this instance's REST stream channel on Redis failed ({Reason}); retrying.", EventName = "RemoteRestStreamSubscribeFailed")]
        public static partial void SubscribeFailed(ILogger logger, string reason);

        [LoggerMessage(5065, LogLevel.Error, "Handling a message on this instance's REST stream channel failed; listening goes on.", EventName = "RemoteRestStreamMessageFailed")]
        public static partial void HandleFailed(ILogger logger, Exception exception);
    }
}
