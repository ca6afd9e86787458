using System.Runtime.CompilerServices;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// A TROM.AI response body as <see cref="System.Net.ServerSentEvents.SseParser"/> reads it. The BCL
/// parser does the wire format; this adds the two things it lacks for TROM.AI, on the bytes as they
/// pass (it looks for line ends, nothing more):
/// <list type="bullet">
/// <item>A last block without its blank line is kept. TROM.AI's last block (<c>end</c>) may come without
/// it, even without its newline, and the SSE spec, which <c>SseParser</c> follows, discards a block
/// the stream ends in. At the end of the body this stream adds one blank line, which completes
/// whatever the body ended in: a partial line, a line ended by CR (CR LF is one line end), or
/// nothing (a blank line dispatches nothing). The JSON is self-delimiting, so a block cut short is
/// then reported as malformed instead of being mistaken for a whole one.</item>
/// <item>A block is bounded. <c>SseParser</c> in .NET 10 grows its line and data buffers without
/// limit, so a runaway upstream line would take the process's memory. This stream counts the bytes
/// of the block being read (its lines, comments and line ends) and throws
/// <see cref="InvalidDataException"/> past the limit: skipping it would mean buffering it anyway.</item>
/// </list>
/// It leaves the body open: its owner, the HTTP response, disposes it. Not thread-safe.
/// </summary>
internal sealed class SseParserInput : ReadOnlyStream
{
    private const byte CarriageReturn = (byte)'\r';
    private const byte LineFeed = (byte)'\n';

    private readonly Stream _body;
    private readonly int _maxBlockBytes;
    private long _blockBytes;
    private byte _previous; // the last byte read when it was a line end, else 0
    private int _endingBytesWritten = -1; // -1 until the body ends

    /// <param name="body">The response body, left open.</param>
    /// <param name="maxBlockBytes">Largest block accepted, line ends included.</param>
    public SseParserInput(Stream body, int maxBlockBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBlockBytes, 1);
        _body = body;
        _maxBlockBytes = maxBlockBytes;
    }

    private static ReadOnlySpan<byte> Ending => "\n\n"u8;

    // Pooled: a token stream completes about one read per event asynchronously, and each would otherwise box this method's state.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty || _endingBytesWritten >= 0)
        {
            return WriteEnding(buffer.Span);
        }

        var read = await _body.ReadAsync(buffer, cancellationToken);
        return Watch(buffer.Span, read);
    }

    public override int Read(Span<byte> buffer) =>
        buffer.IsEmpty || _endingBytesWritten >= 0 ? WriteEnding(buffer) : Watch(buffer, _body.Read(buffer));

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    private int Watch(Span<byte> buffer, int read)
    {
        if (read == 0)
        {
            _endingBytesWritten = 0;
            return WriteEnding(buffer);
        }

        var rest = buffer[..read];
        while (true)
        {
            var lineEnd = rest.IndexOfAny(CarriageReturn, LineFeed);
            if (lineEnd < 0)
            {
                _blockBytes += rest.Length;
                if (!rest.IsEmpty)
                {
                    _previous = 0;
                }

                ThrowIfTooLarge();
                return read;
            }

            var current = rest[lineEnd];
            _blockBytes += lineEnd + 1;
            ThrowIfTooLarge();

            // A line end right after another is a blank line, the end of a block; the LF of a CR LF is not.
            if (lineEnd == 0 && _previous != 0 && !(_previous == CarriageReturn && current == LineFeed))
            {
                _blockBytes = 0;
            }

            _previous = current;
            rest = rest[(lineEnd + 1)..];
        }
    }

    private int WriteEnding(Span<byte> buffer)
    {
        if (_endingBytesWritten < 0)
        {
            return 0; // an empty buffer before the end
        }

        var count = Math.Min(buffer.Length, Ending.Length - _endingBytesWritten);
        Ending.Slice(_endingBytesWritten, count).CopyTo(buffer);
        _endingBytesWritten += count;
        return count;
    }

    private void ThrowIfTooLarge()
    {
        if (_blockBytes > _maxBlockBytes)
        {
            throw new InvalidDataException($"A block of TROM.AI's SSE answer is larger than the gateway's limit of {_maxBlockBytes} bytes.");
        }
    }
}
