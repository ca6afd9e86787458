using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// One stream's events in memory, oldest first, with its end once it has one: written by the single
/// writer of its prediction, read by any number of readers that each wait for what comes next.
/// Bounded by <c>Gateway:Streams:MaxEventsPerStream</c> and <c>MaxBytesPerStream</c>: past either, the
/// oldest events are dropped, and a reader that still needed them is told so (<see cref="ReadState.Trimmed"/>).
/// </summary>
internal sealed class KeptStream : IStreamWriter
{
    /// <summary>
    /// Counted per event on top of its JSON: the event's slot (24 bytes) and its share of the segment
    /// and chunk headers, rounded up, so that a flood of tiny events is bounded too. The unused end of
    /// the stream's current JSON chunk (at most <see cref="LargestChunkSize"/>) and of its newest
    /// segment is not counted: it is bounded per stream, and counting it would make the bounds depend on
    /// how events happened to fall into chunks.
    /// </summary>
    internal const int EventOverhead = 48;

    /// <summary>Counted per stream: the stream object, its ids, its lock and its bookkeeping.</summary>
    internal const int StreamOverhead = 512;

    // Slots per segment of the ring (a power of two: a seq finds its segment and slot by shift and mask).
    // A stream grows one segment at a time and never copies what it keeps (a doubling array allocated
    // about twice its final size in copies); 64 slots of 24 bytes stay far below the large object heap.
    private const int SegmentShift = 6;
    private const int SegmentSize = 1 << SegmentShift;

    // Events' JSON is packed into per-stream chunks rather than one array per event (one surviving GC
    // object per token otherwise): small first so that a short stream stays small, doubling to the
    // largest. An event over half the largest gets its own array so a chunk never wastes more than half.
    private const int FirstChunkSize = 1024;
    private const int LargestChunkSize = 16 * 1024;

    // The serialization scratch a thread keeps between events; one that grew past this for a huge event is let go.
    private const int LargestKeptScratch = 64 * 1024;

    // Events copied per read under the lock: a reader far behind catches up in steps, and the writer is not held up meanwhile.
    private const int ReadBatch = 256;

    // Arguments are JsonElement (SocketIOClient), RawJson or SSE values: written as they are, so
    // options only matter for the naming of anything else.
    private static readonly JsonSerializerOptions ArgumentsJson = new(JsonSerializerDefaults.Web)
    {
        // Kept, never put in a page: non-ASCII text stays as it came, in fewer bytes.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    // What JsonSerializer.SerializeToUtf8Bytes gives its own writer for ArgumentsJson (its default depth
    // is 64; it skips validation), so the kept bytes are the same as they were.
    private static readonly JsonWriterOptions ArgumentsWriter = new()
    {
        Encoder = ArgumentsJson.Encoder,
        MaxDepth = 64,
        SkipValidation = true,
    };

    // Per thread, not per stream: serializing happens outside the lock, and a scratch per stream would
    // cost every stream its size. Reset before each use, so an event that failed to serialize leaves nothing behind.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? scratch;

    [ThreadStatic]
    private static Utf8JsonWriter? scratchWriter;

    private readonly Lock _lock = new();
    private readonly IKeptStreamHost _host;
    private readonly TimeProvider _time;
    private readonly int _maxEvents;
    private readonly long _maxBytes;
    // Segments by their index (seq - 1) >> SegmentShift, each at that index modulo the spine's length
    // (a power of two, grown when the kept span would wrap onto itself); null until the first event, so
    // a stream without events costs nothing here, and an entry is cleared once its events are all dropped.
    private KeptEvent[]?[]? _segments;
    private int _count;
    private byte[]? _chunk;
    private int _chunkUsed;
    private long _firstSeq = 1;
    private long _nextSeq = 1;
    private long _bytes = StreamOverhead;
    private byte[]? _answer;
    private string? _error;
    private long _endSeq;
    private long _endedAt;
    private TaskCompletionSource? _waiter;

    public KeptStream(StreamStart start, IKeptStreamHost host, StreamsOptions options, TimeProvider time)
    {
        Start = start;
        _host = host;
        _time = time;
        _maxEvents = options.MaxEventsPerStream;
        _maxBytes = options.MaxBytesPerStream;
    }

    public StreamStart Start { get; }

    public long LastSeq
    {
        get
        {
            lock (_lock)
            {
                return _nextSeq - 1 - (_endSeq > 0 ? 1 : 0);
            }
        }
    }

    public bool IsEnded => Volatile.Read(ref _endSeq) > 0;

    /// <summary>Bytes this stream counts against the bounds: events, answer and overheads.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>When the stream ended (a <see cref="TimeProvider"/> timestamp); 0 while it runs.</summary>
    public long EndedAt => Volatile.Read(ref _endedAt);

    public void Append(string name, object?[] args) => Append(name, SerializeArguments(args));

    public void Append(string name, EventArguments args) =>
        Append(name, args.TryGetJson(out var utf8) ? WrapArgument(utf8) : SerializeArguments(args.ToArray()));

    private void Append(string name, ArrayBufferWriter<byte> json)
    {
        long resized;
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_endSeq > 0)
            {
                return; // ended (cancelled, say): what still arrives belongs to nobody
            }

            Push(new KeptEvent(name, Keep(json.WrittenSpan)));
            _nextSeq++;
            resized = json.WrittenCount + EventOverhead;
            _bytes += resized;
            while (_count > 1 && (_count > _maxEvents || _bytes > _maxBytes + StreamOverhead))
            {
                resized -= DropOldest();
            }

            waiter = _waiter;
            _waiter = null;
        }

        if (json.Capacity > LargestKeptScratch)
        {
            scratch = null;
            scratchWriter = null;
        }

        waiter?.TrySetResult();
        _host.Resized(this, resized);
        _host.Changed(this);
    }

    public void Complete(ReadOnlyMemory<byte> answer) => End(answer.ToArray(), null);

    /// <summary>An answer as kept, written as the events are: a client compares their values as text.</summary>
    public static byte[] Serialize(JsonElement answer) => JsonSerializer.SerializeToUtf8Bytes(answer, ArgumentsJson);

    public void Fail(string message) => End(null, message);

    private void End(byte[]? answer, string? error)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_endSeq > 0)
            {
                return;
            }

            _answer = answer;
            _error = error;
            _endSeq = _nextSeq++;
            _bytes += answer?.Length ?? error!.Length * 2;
            Volatile.Write(ref _endedAt, _time.GetTimestamp());
            waiter = _waiter;
            _waiter = null;
        }

        waiter?.TrySetResult();
        _host.Resized(this, answer?.Length ?? error!.Length * 2);
        _host.Ended(this);
        _host.Changed(this);
    }

    /// <summary>Its header, its events after <paramref name="afterSeq"/>, then each new one, then its end.</summary>
    public async IAsyncEnumerable<StreamItem> ReadAsync(long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        yield return StreamItem.Header(Start);
        var batch = new List<StreamItem>();
        var after = afterSeq;
        while (true)
        {
            var read = Read(after, batch, ReadBatch);
            foreach (var item in batch)
            {
                yield return item;
                after = item.Seq;
            }

            batch.Clear();
            switch (read.State)
            {
                case ReadState.Done:
                    yield break;
                case ReadState.Failed:
                    throw new HubException(read.Error);
                case ReadState.Trimmed:
                    throw StreamErrors.Trimmed(Start.StreamId, after, read.FirstKept);
                case ReadState.Waiting:
                    await read.Changed!.WaitAsync(cancellationToken);
                    break;
            }
        }
    }

    /// <summary>
    /// Copies into <paramref name="into"/> the events after <paramref name="afterSeq"/> (at most
    /// <paramref name="max"/>), then the result if the stream ended with one and they were the last.
    /// </summary>
    public StreamRead Read(long afterSeq, List<StreamItem> into, int max)
    {
        lock (_lock)
        {
            var lastEvent = _nextSeq - 1 - (_endSeq > 0 ? 1 : 0);
            if (afterSeq + 1 < _firstSeq && afterSeq < lastEvent)
            {
                return new StreamRead(ReadState.Trimmed, FirstKept: _firstSeq);
            }

            var from = Math.Max(afterSeq + 1, _firstSeq);
            for (var seq = from; seq <= lastEvent && into.Count < max; seq++)
            {
                var kept = Slot(seq);
                into.Add(new StreamItem(StreamItemKind.Event, seq, kept.Name, kept.Args));
            }

            var next = into.Count > 0 ? into[^1].Seq : afterSeq;
            if (next < lastEvent)
            {
                return new StreamRead(ReadState.More);
            }

            if (_endSeq == 0)
            {
                _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return new StreamRead(ReadState.Waiting, Changed: _waiter.Task);
            }

            if (_error is not null)
            {
                return new StreamRead(ReadState.Failed, Error: _error, EndSeq: _endSeq);
            }

            if (afterSeq < _endSeq)
            {
                into.Add(new StreamItem(StreamItemKind.Result, _endSeq, null, _answer));
            }

            return new StreamRead(ReadState.Done, EndSeq: _endSeq);
        }
    }

    /// <summary>Drops the oldest events until <paramref name="bytes"/> are freed (the instance's total is full); returns what was freed.</summary>
    public long DropOldest(long bytes)
    {
        long freed = 0;
        lock (_lock)
        {
            while (freed < bytes && _count > 0)
            {
                freed += DropOldest();
            }
        }

        if (freed > 0)
        {
            _host.Resized(this, -freed);
        }

        return freed;
    }

    /// <summary>The arguments as JSON, in this thread's scratch (valid until its next event).</summary>
    private static ArrayBufferWriter<byte> SerializeArguments(object?[] args)
    {
        var buffer = scratch ??= new ArrayBufferWriter<byte>(256);
        var writer = scratchWriter ??= new Utf8JsonWriter(buffer, ArgumentsWriter);
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        JsonSerializer.Serialize(writer, args, ArgumentsJson);
        writer.Flush();
        return buffer;
    }

    /// <summary>One argument's JSON as the arguments array, <c>[value]</c>: the bytes <see cref="SerializeArguments"/> writes for it, without the serializer.</summary>
    private static ArrayBufferWriter<byte> WrapArgument(ReadOnlySpan<byte> value)
    {
        var buffer = scratch ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        var span = buffer.GetSpan(value.Length + 2);
        span[0] = (byte)'[';
        value.CopyTo(span[1..]);
        span[value.Length + 1] = (byte)']';
        buffer.Advance(value.Length + 2);
        return buffer;
    }

    /// <summary>Under the lock: a copy of <paramref name="json"/> in this stream's current chunk (or its own array if large).</summary>
    private ReadOnlyMemory<byte> Keep(ReadOnlySpan<byte> json)
    {
        if (json.Length > LargestChunkSize / 2)
        {
            return json.ToArray();
        }

        if (_chunk is null || _chunk.Length - _chunkUsed < json.Length)
        {
            // The full chunk is not referenced from here any more: the events in it hold it, and it goes when they are dropped.
            var size = _chunk is null ? FirstChunkSize : Math.Min(_chunk.Length * 2, LargestChunkSize);
            while (size < json.Length)
            {
                size *= 2;
            }

            // Never reused nor pooled: a reader may still hold a slice of an event dropped since.
            _chunk = GC.AllocateUninitializedArray<byte>(size);
            _chunkUsed = 0;
        }

        json.CopyTo(_chunk.AsSpan(_chunkUsed));
        var kept = new ReadOnlyMemory<byte>(_chunk, _chunkUsed, json.Length);
        _chunkUsed += json.Length;
        return kept;
    }

    /// <summary>Under the lock: the kept event <paramref name="seq"/> (between the first kept and the last).</summary>
    private KeptEvent Slot(long seq) =>
        _segments![(int)((seq - 1) >> SegmentShift) & (_segments.Length - 1)]![(int)((seq - 1) & (SegmentSize - 1))];

    /// <summary>Under the lock: keeps <paramref name="kept"/> as the next seq, adding a segment when it starts one.</summary>
    private void Push(KeptEvent kept)
    {
        var position = _nextSeq - 1;
        var index = position >> SegmentShift;
        var slot = (int)(position & (SegmentSize - 1));
        if (slot == 0)
        {
            _segments ??= new KeptEvent[]?[4];
            var firstIndex = (_firstSeq - 1) >> SegmentShift;
            if (index - firstIndex >= _segments.Length)
            {
                // Only the spine (one reference per segment) is copied; the events stay where they are.
                var grown = new KeptEvent[]?[_segments.Length * 2];
                for (var i = firstIndex; i < index; i++)
                {
                    grown[(int)i & (grown.Length - 1)] = _segments[(int)i & (_segments.Length - 1)];
                }

                _segments = grown;
            }

            _segments[(int)index & (_segments.Length - 1)] = new KeptEvent[SegmentSize];
        }

        _segments![(int)index & (_segments.Length - 1)]![slot] = kept;
        _count++;
    }

    /// <summary>Under the lock; returns the bytes freed.</summary>
    private long DropOldest()
    {
        var position = _firstSeq - 1;
        var entry = (int)(position >> SegmentShift) & (_segments!.Length - 1);
        var slot = (int)(position & (SegmentSize - 1));
        var oldest = _segments[entry]![slot];
        _segments[entry]![slot] = default; // lets its name and its chunk go once nothing else holds them
        if (slot == SegmentSize - 1)
        {
            _segments[entry] = null;
        }

        _count--;
        _firstSeq++;
        if (_count == 0)
        {
            // Every event in the current chunk is dropped too: the next event starts a new one.
            _chunk = null;
        }

        var freed = oldest.Args.Length + EventOverhead;
        _bytes -= freed;
        return freed;
    }

    // Its seq is its place in the ring, so it is not stored: 24 bytes a slot.
    private readonly record struct KeptEvent(string Name, ReadOnlyMemory<byte> Args);
}

internal enum ReadState
{
    /// <summary>More events are kept after the ones copied: read again.</summary>
    More,

    /// <summary>Everything kept was copied; <see cref="StreamRead.Changed"/> completes when more comes.</summary>
    Waiting,

    /// <summary>The stream ended with its answer, copied last (unless the reader was past it).</summary>
    Done,

    /// <summary>The stream ended with an error (<see cref="StreamRead.Error"/>), after the events copied.</summary>
    Failed,

    /// <summary>The events right after the reader's position were dropped (<see cref="StreamRead.FirstKept"/> is the oldest kept).</summary>
    Trimmed,
}

internal readonly record struct StreamRead(ReadState State, Task? Changed = null, string? Error = null, long FirstKept = 0, long EndSeq = 0);
