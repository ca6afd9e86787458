using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// A hub connection's input as SignalR reads it, noting when the client last completed a message,
/// handshake and pings included. Bytes that never complete a message do not count: a client cannot
/// stay alive by trickling one byte at a time. How a message ends depends on the hub protocol: the
/// handshake, and every JSON message, ends with a record separator; a MessagePack message is
/// prefixed with its length. The handshake names the protocol, so it is read here too.
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

    private Framing _framing = Framing.Handshake;

    // Length-prefixed framing, across reads: the length being read (a VarInt, 7 bits a byte, low bits
    // first), or the bytes of the current message still to come.
    private long _length;
    private int _lengthShift;
    private long _remaining = -1; // -1: reading a length

    public ClientActivity(PipeReader inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        _lastMessage = time.GetTimestamp();
    }

    private enum Framing
    {
        /// <summary>Before the handshake's end: JSON, ended by a record separator, whatever protocol it asks for.</summary>
        Handshake,

        /// <summary>The JSON hub protocol.</summary>
        RecordSeparator,

        /// <summary>Binary hub protocols (MessagePack): a VarInt length, then that many bytes.</summary>
        LengthPrefixed,

        /// <summary>A length no hub protocol sends: SignalR closes the connection; nothing more counts.</summary>
        Broken,
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
        if (buffer.Length > _searched && Completes(buffer, buffer.Slice(_searched)))
        {
            Volatile.Write(ref _lastMessage, _time.GetTimestamp());
        }

        _searched = buffer.Length;
    }

    /// <summary>Reads the bytes not seen before (<paramref name="fresh"/>, the end of <paramref name="buffer"/>); true when they complete a message.</summary>
    private bool Completes(ReadOnlySequence<byte> buffer, ReadOnlySequence<byte> fresh)
    {
        var completed = false;
        if (_framing == Framing.Handshake)
        {
            if (fresh.PositionOf(RecordSeparator) is not { } end)
            {
                return false;
            }

            // Nothing is consumed before the handshake is complete: it starts where the buffer does.
            _framing = IsJson(buffer.Slice(buffer.Start, end)) ? Framing.RecordSeparator : Framing.LengthPrefixed;
            completed = true;
            fresh = fresh.Slice(fresh.GetPosition(1, end));
        }

        return _framing switch
        {
            Framing.RecordSeparator => fresh.PositionOf(RecordSeparator) is not null || completed,
            Framing.LengthPrefixed => CompletesFrame(fresh) || completed,
            _ => completed,
        };
    }

    /// <summary>Walks length-prefixed messages through <paramref name="fresh"/>, skipping their bodies; true when one ended in it.</summary>
    private bool CompletesFrame(ReadOnlySequence<byte> fresh)
    {
        var completed = false;
        var reader = new SequenceReader<byte>(fresh);
        while (!reader.End)
        {
            if (_remaining < 0)
            {
                reader.TryRead(out var next);
                _length |= (long)(next & 0x7f) << _lengthShift;
                if ((next & 0x80) != 0)
                {
                    _lengthShift += 7;
                    if (_lengthShift > 28)
                    {
                        _framing = Framing.Broken; // longer than SignalR's five-byte VarInt
                        return completed;
                    }

                    continue;
                }

                (_remaining, _length, _lengthShift) = (_length, 0, 0);
            }

            var skipped = Math.Min(_remaining, reader.Remaining);
            reader.Advance(skipped);
            _remaining -= skipped;
            if (_remaining == 0)
            {
                completed = true;
                _remaining = -1;
            }
        }

        return completed;
    }

    /// <summary>The handshake asks for the JSON protocol (SignalR's default when it cannot be read: it then fails the handshake itself).</summary>
    private static bool IsJson(ReadOnlySequence<byte> handshake)
    {
        try
        {
            var reader = new Utf8JsonReader(handshake);
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals("protocol"u8))
                {
                    return !reader.Read() || reader.TokenType != JsonTokenType.String || string.Equals(reader.GetString(), "json", StringComparison.OrdinalIgnoreCase);
                }
            }
        }
        catch (JsonException)
        {
        }

        return true;
    }
}
