using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;

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
    /// Counted per event on top of its JSON: the event's slot (24 bytes) and its byte array's header
    /// (24), so that a flood of tiny events is bounded too.
    /// </summary>
    internal const int EventOverhead = 48;

    /// <summary>Counted per stream: the stream object, its ids, its lock and its first buffer.</summary>
    internal const int StreamOverhead = 512;

    // Events copied per read under the lock: a reader far behind catches up in steps, and the writer is not held up meanwhile.
    private const int ReadBatch = 256;

    // Arguments are JsonElement (SocketIOClient), RawJson or SSE values: written as they are, so
    // options only matter for the naming of anything else.
    private static readonly JsonSerializerOptions ArgumentsJson = new(JsonSerializerDefaults.Web)
    {
        // Kept, never put in a page: non-ASCII text stays as it came, in fewer bytes.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly Lock _lock = new();
    private readonly IKeptStreamHost _host;
    private readonly TimeProvider _time;
    private readonly int _maxEvents;
    private readonly long _maxBytes;
    private KeptEvent[] _ring = new KeptEvent[16];
    private int _head;
    private int _count;
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

    public void Append(string name, object?[] args)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(args, ArgumentsJson);
        long resized;
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_endSeq > 0)
            {
                return; // ended (cancelled, say): what still arrives belongs to nobody
            }

            Push(new KeptEvent(_nextSeq++, name, json));
            resized = json.Length + EventOverhead;
            _bytes += resized;
            while (_count > 1 && (_count > _maxEvents || _bytes > _maxBytes + StreamOverhead))
            {
                resized -= DropOldest();
            }

            waiter = _waiter;
            _waiter = null;
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
                var kept = _ring[(_head + (int)(seq - _firstSeq)) % _ring.Length];
                into.Add(new StreamItem(StreamItemKind.Event, kept.Seq, kept.Name, kept.Args));
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

    private void Push(KeptEvent kept)
    {
        if (_count == _ring.Length)
        {
            var grown = new KeptEvent[_ring.Length * 2];
            for (var i = 0; i < _count; i++)
            {
                grown[i] = _ring[(_head + i) % _ring.Length];
            }

            _ring = grown;
            _head = 0;
        }

        _ring[(_head + _count) % _ring.Length] = kept;
        _count++;
    }

    /// <summary>Under the lock; returns the bytes freed.</summary>
    private long DropOldest()
    {
        var oldest = _ring[_head];
        _ring[_head] = default;
        _head = (_head + 1) % _ring.Length;
        _count--;
        _firstSeq++;
        var freed = oldest.Args.Length + EventOverhead;
        _bytes -= freed;
        return freed;
    }

    private readonly record struct KeptEvent(long Seq, string Name, byte[] Args);
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
