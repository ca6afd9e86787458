using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Kept streams in Redis Streams, so that a stream can be resumed on any instance. The instance running
/// a prediction keeps its stream in memory (<see cref="MemoryStreamStore"/>: its own readers never wait on
/// Redis) and writes it behind to Redis: one Redis stream per kept stream, each entry's id
/// <c>0-{seq}</c>, capped with <c>XADD MAXLEN</c> at <c>MaxEventsPerStream</c>, expiring
/// <c>Retention</c> after its end (and, while it runs, <c>DetachedTimeout + Retention</c> after its last
/// write); a hash beside it names its chatflow, its owner and the instance writing it. A reader on
/// another instance pages through the entries, then waits for a notice on the stream's channel.
/// When Redis comes back empty (a restart), every stream this instance still keeps is written again.
/// </summary>
internal sealed partial class RedisStreamStore : IStreamStore
{
    // Entries read per XRANGE, and at most this many written per round trip: a far-behind reader catches up in steps.
    private const int Page = 256;

    // A reader that has seen nothing new for this long checks that the instance writing the stream is still alive.
    private static readonly TimeSpan IdleCheck = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, WriteBehind> _writing = new(StringComparer.Ordinal);
    private readonly MemoryStreamStore _local;
    private readonly RedisConnection _redis;
    private readonly SessionDirectory _directory;
    private readonly IOptions<GatewayOptions> _options;
    private readonly ILogger _logger;

    public RedisStreamStore(MemoryStreamStore local, RedisConnection redis, SessionDirectory directory, IOptions<GatewayOptions> options, ILogger<RedisStreamStore> logger)
    {
        _local = local;
        _redis = redis;
        _directory = directory;
        _options = options;
        _logger = logger;
        local.StreamChanged = stream => WriterOf(stream).Signal();
        redis.Restored += OnRestored;
    }

    private string Prefix => _options.Value.Redis.KeyPrefix;

    private StreamsOptions Options => _options.Value.Streams;

    public IStreamWriter Create(StreamStart start) => _local.CreateStream(start);

    public IAsyncEnumerable<StreamItem> ReadAsync(string streamId, long afterSeq, string? reader, bool checkOwner, CancellationToken cancellationToken) =>
        _local.TryGet(streamId, out _)
            ? _local.ReadAsync(streamId, afterSeq, reader, checkOwner, cancellationToken) // its own: from memory, whatever Redis does
            : ReadFromRedisAsync(streamId, afterSeq, reader, checkOwner, cancellationToken);

    public async Task FlushAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            while (_writing.Values.Any(writer => !writer.IsIdle))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), deadline.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Log.FlushTimedOut(_logger, timeout);
        }
    }

    // A stream has a writer from its first change until its end is in Redis.
    private WriteBehind WriterOf(KeptStream stream) =>
        _writing.GetOrAdd(stream.Start.StreamId, static (_, state) => new WriteBehind(state.Store, state.Stream), (Store: this, Stream: stream));

    private RedisKey EventsKey(string streamId) => $"{Prefix}:stream:{streamId}";

    private RedisKey MetaKey(string streamId) => $"{Prefix}:stream:{streamId}:meta";

    private static RedisChannel Channel(string streamId) => RedisChannel.Literal($"stream:{streamId}");

    private async IAsyncEnumerable<StreamItem> ReadFromRedisAsync(
        string streamId, long afterSeq, string? reader, bool checkOwner, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var database = _redis.Database ?? throw StreamErrors.Unavailable(streamId);
        var meta = await CallAsync(streamId, () => database.HashGetAllAsync(MetaKey(streamId)));
        var fields = meta.ToDictionary(entry => (string)entry.Name!, entry => (string?)entry.Value, StringComparer.Ordinal);
        var owner = fields.GetValueOrDefault("owner");
        if (fields.Count == 0 || (checkOwner && owner != reader))
        {
            throw StreamErrors.Unknown(streamId, Options.Retention);
        }

        yield return StreamItem.Header(new StreamStart(streamId, fields.GetValueOrDefault("chatflowId") ?? "", fields.GetValueOrDefault("chatId"), owner));

        // Subscribed before the first read: a notice sent after it is not missed.
        var subscriber = (await _redis.GetMultiplexerAsync()).GetSubscriber();
        var notices = await CallAsync(streamId, () => subscriber.SubscribeAsync(Channel(streamId)));
        try
        {
            var after = afterSeq;
            while (true)
            {
                var entries = await CallAsync(streamId, () => database.StreamRangeAsync(EventsKey(streamId), $"0-{after + 1}", "+", Page));
                if (entries.Length > 0 && SeqOf(entries[0]) > after + 1)
                {
                    throw StreamErrors.Trimmed(streamId, after, SeqOf(entries[0]));
                }

                foreach (var entry in entries)
                {
                    var seq = SeqOf(entry);
                    var json = (byte[]?)entry["j"] ?? [];
                    switch ((string?)entry["k"])
                    {
                        case "e":
                            yield return new StreamItem(StreamItemKind.Event, seq, (string?)entry["n"], json);
                            break;
                        case "r":
                            yield return new StreamItem(StreamItemKind.Result, seq, null, json);
                            yield break;
                        default:
                            throw new HubException(System.Text.Encoding.UTF8.GetString(json));
                    }

                    after = seq;
                }

                if (entries.Length == Page)
                {
                    continue;
                }

                // Nothing after the reader: a reader already at the end (its afterSeq is the answer's own seq, the
                // last it got) is done, as it is in memory, instead of waiting for entries that will never come.
                if (entries.Length == 0 && await EndAtOrBeforeAsync(database, streamId, after) is { Ended: true } end)
                {
                    if (end.Error is { } error)
                    {
                        throw new HubException(error);
                    }

                    yield break;
                }

                try
                {
                    using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    idle.CancelAfter(IdleCheck);
                    await notices.ReadAsync(idle.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    // Nothing new for a while: is anyone still writing it?
                    var writer = fields.GetValueOrDefault("instance");
                    if (!await CallAsync(streamId, () => database.KeyExistsAsync(MetaKey(streamId))))
                    {
                        throw StreamErrors.Unknown(streamId, Options.Retention);
                    }

                    if (writer is not null && !await CallAsync(streamId, () => database.KeyExistsAsync(_directory.InstanceKey(writer))))
                    {
                        throw StreamErrors.WriterLost(streamId);
                    }
                }
            }
        }
        finally
        {
            try
            {
                await notices.UnsubscribeAsync();
            }
            catch (RedisException)
            {
                // Redis went away meanwhile: so did the subscription.
            }
        }
    }

    /// <summary>Whether the stream's last entry is its end (an answer, or an error to report) at or before <paramref name="after"/>.</summary>
    private async Task<(bool Ended, string? Error)> EndAtOrBeforeAsync(IDatabase database, string streamId, long after)
    {
        var last = await CallAsync(streamId, () => database.StreamRangeAsync(EventsKey(streamId), "-", "+", 1, Order.Descending));
        if (last.Length == 0 || SeqOf(last[0]) > after)
        {
            return (false, null);
        }

        return (string?)last[0]["k"] switch
        {
            "e" => (false, null),
            "r" => (true, null),
            _ => (true, System.Text.Encoding.UTF8.GetString((byte[]?)last[0]["j"] ?? [])),
        };
    }

    private static long SeqOf(StreamEntry entry)
    {
        var id = (string)entry.Id!;
        return long.Parse(id.AsSpan(id.IndexOf('-') + 1), CultureInfo.InvariantCulture);
    }

    private static async Task<T> CallAsync<T>(string streamId, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            throw StreamErrors.Unavailable(streamId);
        }
    }

    /// <summary>Redis is back, possibly empty after a restart: streams it lost are written again from memory, ended ones too.</summary>
    private void OnRestored()
    {
        foreach (var stream in _local.Streams)
        {
            WriterOf(stream).Recheck();
        }
    }

    /// <summary>Writes one stream behind to Redis, one round of writes at a time, from where it stopped.</summary>
    private sealed class WriteBehind(RedisStreamStore store, KeptStream stream)
    {
        private readonly List<StreamItem> _batch = [];
        private long _written = -1; // -1: not even its hash is written
        private bool _ended;
        private bool _recheck;
        private int _running;
        private int _dirty;

        public bool IsIdle => Volatile.Read(ref _running) == 0 && (Volatile.Read(ref _dirty) == 0 || store._redis.Database is null);

        public void Signal()
        {
            Volatile.Write(ref _dirty, 1);
            if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
            {
                _ = Task.Run(PumpAsync);
            }
        }

        /// <summary>Checks that Redis still has the stream before writing on, and writes it whole again if not.</summary>
        public void Recheck()
        {
            Volatile.Write(ref _recheck, true);
            Signal();
        }

        private async Task PumpAsync()
        {
            while (true)
            {
                Volatile.Write(ref _dirty, 0);
                try
                {
                    await WriteAsync();
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    // Written again once Redis is back (OnRestored).
                    Log.WriteFailed(store._logger, stream.Start.StreamId, e.Message);
                }

                Volatile.Write(ref _running, 0);
                if (Volatile.Read(ref _dirty) == 0 || Interlocked.CompareExchange(ref _running, 1, 0) != 0)
                {
                    return;
                }
            }
        }

        private async Task WriteAsync()
        {
            var database = store._redis.Database;
            if (database is null)
            {
                return;
            }

            var id = stream.Start.StreamId;
            var events = store.EventsKey(id);
            var meta = store.MetaKey(id);
            if (!store._local.TryGet(id, out _))
            {
                store._writing.TryRemove(KeyValuePair.Create(id, this)); // its retention has passed
                return;
            }

            if (Volatile.Read(ref _recheck))
            {
                _recheck = false;
                if (!await database.KeyExistsAsync(meta))
                {
                    if (_written >= 0 || stream.IsEnded)
                    {
                        Log.Rewriting(store._logger, id);
                    }

                    await database.KeyDeleteAsync(events);
                    _written = -1;
                    _ended = false;
                }
                else if (_written < 0)
                {
                    _ended = true; // a writer made for the recheck of a stream whose end Redis still has
                }
            }

            if (_ended)
            {
                store._writing.TryRemove(KeyValuePair.Create(id, this)); // nothing more to write: it ended
                return;
            }

            var options = store.Options;
            var running = options.DetachedTimeout + options.Retention;
            if (_written < 0)
            {
                var start = stream.Start;
                List<HashEntry> fields = [new("chatflowId", start.ChatflowId), new("instance", store._directory.InstanceId)];
                if (start.ChatId is not null)
                {
                    fields.Add(new("chatId", start.ChatId));
                }

                if (start.Owner is not null)
                {
                    fields.Add(new("owner", start.Owner));
                }

                await database.HashSetAsync(meta, [.. fields]);
                _written = 0;
            }

            StreamRead read;
            do
            {
                _batch.Clear();
                read = stream.Read(_written, _batch, Page);
                if (read.State == ReadState.Trimmed)
                {
                    _written = read.FirstKept - 1; // dropped from memory before it was written: Redis never gets it
                    read = new StreamRead(ReadState.More);
                    continue;
                }

                // One more than the events: the end entry must not push out an event memory still keeps.
                var cap = options.MaxEventsPerStream + 1;
                var writes = new List<Task>(_batch.Count + 4);
                foreach (var item in _batch)
                {
                    writes.Add(item.Kind == StreamItemKind.Event
                        ? database.StreamAddAsync(events, [new("k", "e"), new("n", item.Name), new("j", item.Json)], $"0-{item.Seq}", cap)
                        : database.StreamAddAsync(events, [new("k", "r"), new("j", item.Json)], $"0-{item.Seq}", cap));
                }

                if (read.State == ReadState.Failed)
                {
                    writes.Add(database.StreamAddAsync(events, [new("k", "f"), new("j", read.Error)], $"0-{read.EndSeq}", cap));
                }

                var ended = read.State is ReadState.Done or ReadState.Failed;
                var lifetime = ended ? options.Retention : running;
                writes.Add(database.KeyExpireAsync(events, lifetime));
                writes.Add(database.KeyExpireAsync(meta, lifetime));
                writes.Add(database.PublishAsync(Channel(id), ""));
                await Task.WhenAll(writes);
                if (_batch.Count > 0)
                {
                    _written = _batch[^1].Seq;
                }

                _ended = ended;
            }
            while (read.State == ReadState.More);

            if (_ended)
            {
                store._writing.TryRemove(KeyValuePair.Create(id, this)); // written whole: only a Redis restart brings it back here
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5050, LogLevel.Warning, "Writing stream {StreamId} to Redis failed ({Reason}); it is written again once Redis is back.", EventName = "StreamWriteFailed")]
        public static partial void WriteFailed(ILogger logger, string streamId, string reason);

        [LoggerMessage(5051, LogLevel.Information, "Redis lost stream {StreamId} (a restart); writing it again from this instance's memory.", EventName = "StreamRewritten")]
        public static partial void Rewriting(ILogger logger, string streamId);

        [LoggerMessage(5052, LogLevel.Warning, "Streams were not all written to Redis within {Timeout}.", EventName = "StreamFlushTimedOut")]
        public static partial void FlushTimedOut(ILogger logger, TimeSpan timeout);
    }
}
