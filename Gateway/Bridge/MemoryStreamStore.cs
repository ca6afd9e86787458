using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Kept streams in this instance's memory: the store of a gateway that runs alone, and the copy of its
/// own running streams that an instance on Redis keeps (reads on the owning instance never wait on
/// Redis, and what Redis loses in a restart is written again from here).
/// <para>
/// Bounds: each stream by <c>MaxEventsPerStream</c> and <c>MaxBytesPerStream</c> (<see cref="KeptStream"/>);
/// all together by <c>MaxTotalBytes</c>: past it the streams that ended longest ago are forgotten first,
/// then the stream being written drops its oldest events. An ended stream is forgotten
/// <c>Retention</c> after its end.
/// </para>
/// </summary>
internal sealed partial class MemoryStreamStore : IStreamStore, IKeptStreamHost, IDisposable
{
    private readonly ConcurrentDictionary<string, KeptStream> _streams = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<KeptStream> _ended = new();
    private readonly IOptions<GatewayOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _sweeperGate = new();
    private ITimer? _sweeper;
    private long _totalBytes;

    public MemoryStreamStore(IOptions<GatewayOptions> options, TimeProvider time, ILogger<MemoryStreamStore> logger)
    {
        _options = options; // read where used: the container may build this before start-up validates them
        _time = time;
        _logger = logger;
    }

    /// <summary>Told of every change to a stream of this store, outside its lock (the Redis store writes behind).</summary>
    public Action<KeptStream>? StreamChanged { get; set; }

    /// <summary>Streams kept now, running and ended.</summary>
    public int Count => _streams.Count;

    /// <summary>Bytes kept now, all streams together.</summary>
    public long TotalBytes => Interlocked.Read(ref _totalBytes);

    private StreamsOptions Options => _options.Value.Streams;

    public IStreamWriter Create(StreamStart start) => CreateStream(start);

    public KeptStream CreateStream(StreamStart start)
    {
        EnsureSweeping();
        var stream = new KeptStream(start, this, Options, _time);
        _streams[start.StreamId] = stream;
        Resized(stream, KeptStream.StreamOverhead);
        return stream;
    }

    /// <summary>Every stream kept now, running and ended.</summary>
    public ICollection<KeptStream> Streams => _streams.Values;

    public bool TryGet(string streamId, out KeptStream stream) => _streams.TryGetValue(streamId, out stream!);

    public IAsyncEnumerable<StreamItem> ReadAsync(string streamId, long afterSeq, string? reader, bool checkOwner, CancellationToken cancellationToken)
    {
        if (!TryGet(streamId, out var stream) || (checkOwner && stream.Start.Owner != reader))
        {
            return Refused(StreamErrors.Unknown(streamId, Options.Retention));
        }

        return stream.ReadAsync(afterSeq, cancellationToken);
    }

    public Task FlushAsync(TimeSpan timeout) => Task.CompletedTask; // nothing is kept anywhere else

    /// <summary>Stops keeping <paramref name="stream"/>; its readers still read what they hold of it.</summary>
    public void Forget(KeptStream stream)
    {
        if (_streams.TryRemove(KeyValuePair.Create(stream.Start.StreamId, stream)))
        {
            Interlocked.Add(ref _totalBytes, -stream.Bytes);
        }
    }

    public void Resized(KeptStream stream, long bytes)
    {
        var total = Interlocked.Add(ref _totalBytes, bytes);
        var limit = Options.MaxTotalBytes;
        if (bytes <= 0 || total <= limit)
        {
            return;
        }

        // Full: what ended longest ago goes first, then the oldest events of the stream that grew.
        while (Interlocked.Read(ref _totalBytes) > limit && _ended.TryDequeue(out var ended))
        {
            if (!ReferenceEquals(ended, stream))
            {
                Log.Evicted(_logger, ended.Start.StreamId, limit);
                Forget(ended);
            }
        }

        var over = Interlocked.Read(ref _totalBytes) - limit;
        if (over > 0 && !stream.IsEnded)
        {
            stream.DropOldest(over); // reports back through Resized, with a negative size
        }
    }

    public void Changed(KeptStream stream) => StreamChanged?.Invoke(stream);

    public void Ended(KeptStream stream) => _ended.Enqueue(stream);

    /// <summary>Forgets the streams whose retention has passed; they ended in this order, so it stops at the first that has not.</summary>
    private void Sweep()
    {
        var retention = Options.Retention;
        while (_ended.TryPeek(out var stream) && _time.GetElapsedTime(stream.EndedAt) >= retention)
        {
            if (_ended.TryDequeue(out var expired))
            {
                Forget(expired);
            }
        }
    }

    private void EnsureSweeping()
    {
        if (Volatile.Read(ref _sweeper) is not null)
        {
            return;
        }

        lock (_sweeperGate)
        {
            // Often enough that an expired stream goes within a second of its retention, or a tenth of a shorter one.
            var period = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(1).Ticks, Options.Retention.Ticks / 10 + 1));
            _sweeper ??= _time.CreateTimer(static state => ((MemoryStreamStore)state!).Sweep(), this, period, period);
        }
    }

    private static async IAsyncEnumerable<StreamItem> Refused(Exception refusal)
    {
        await Task.CompletedTask;
        if (refusal is not null)
        {
            throw refusal; // when read, as every other failure of a read, not when the read is asked for
        }

        yield break;
    }

    public void Dispose() => _sweeper?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Information, "Forgot ended stream {StreamId} before its retention: this instance keeps at most {Limit} bytes of streams (Gateway:Streams:MaxTotalBytes).", EventName = "StreamEvicted")]
        public static partial void Evicted(ILogger logger, string streamId, long limit);
    }
}
