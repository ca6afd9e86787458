using System.Buffers;
using System.IO.Pipelines;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// A hub connection's input as SignalR reads it, noting when the client last completed a message
/// (the JSON hub protocol ends every message, handshake and pings included, with a record
/// separator). Bytes that never complete a message do not count: a client cannot stay alive by
/// trickling one byte at a time.
/// </summary>
internal sealed class ClientActivity : PipeReader
{
    private const byte RecordSeparator = 0x1e;

    private readonly PipeReader _inner;
    private readonly TimeProvider _time;
    private long _lastMessage;

    // The buffer of the last read and how much of it was already searched: a read returns what was
    // examined but not consumed before, and only bytes after that are new.
    private ReadOnlySequence<byte> _buffer;
    private long _searched;

    public ClientActivity(PipeReader inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        _lastMessage = time.GetTimestamp();
    }

    /// <summary>How long ago the client completed its last message (or the connection started).</summary>
    public TimeSpan Idle => _time.GetElapsedTime(Volatile.Read(ref _lastMessage));

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = _inner.ReadAsync(cancellationToken);
        if (read.IsCompletedSuccessfully)
        {
            var result = read.Result;
            Observe(result.Buffer);
            return new ValueTask<ReadResult>(result);
        }

        return ObserveAsync(read);
    }

    private async ValueTask<ReadResult> ObserveAsync(ValueTask<ReadResult> read)
    {
        var result = await read;
        Observe(result.Buffer);
        return result;
    }

    public override bool TryRead(out ReadResult result)
    {
        if (!_inner.TryRead(out result))
        {
            return false;
        }

        Observe(result.Buffer);
        return true;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        _searched = _buffer.Slice(consumed).Length; // what stays in the pipe has been searched already
        _buffer = default;
        _inner.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => _inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);

    private void Observe(ReadOnlySequence<byte> buffer)
    {
        _buffer = buffer;
        if (buffer.Length > _searched && buffer.Slice(_searched).PositionOf(RecordSeparator) is not null)
        {
            Volatile.Write(ref _lastMessage, _time.GetTimestamp());
        }

        _searched = buffer.Length;
    }
}
