using System.Buffers;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// The response body of a kept REST prediction on its way to the caller, copied (up to
/// <paramref name="limit"/> bytes) to end the prediction's stream with: a resumer gets the answer
/// too. Once the caller has gone (<paramref name="callerGone"/>), the body is only copied, so that the
/// proxy reads TROM.AI's answer to its end instead of giving up on it.
/// </summary>
internal sealed class ResponseCapture(Stream inner, long limit, CancellationToken callerGone) : Stream
{
    private const int FirstBufferBytes = 4096;

    // Grown in a rented buffer and copied out once, at its size, when the body is taken: an answer carries
    // the whole streamed text, so a doubling array of our own cost about three answers in garbage per prediction.
    private byte[]? _buffer;
    private int _written;
    private byte[]? _body;

    /// <summary>The body as it was written (still encoded, if TROM.AI compressed it); read once the response is complete, after which nothing more is copied.</summary>
    public ReadOnlyMemory<byte> Body => _body ??= TakeBody();

    /// <summary>True when the body was larger than the limit: nothing of it is kept, and <see cref="Body"/> is empty.</summary>
    public bool Overflowed { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Copy(buffer);
        if (!callerGone.IsCancellationRequested)
        {
            try
            {
                inner.Write(buffer);
            }
            catch (Exception) when (callerGone.IsCancellationRequested)
            {
            }
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Copy(buffer.Span);
        if (callerGone.IsCancellationRequested)
        {
            return;
        }

        try
        {
            await inner.WriteAsync(buffer, cancellationToken);
        }
        catch (Exception) when (callerGone.IsCancellationRequested)
        {
            // The caller went away meanwhile: the rest is for the stream only.
        }
    }

    public override void Flush()
    {
        if (!callerGone.IsCancellationRequested)
        {
            inner.Flush();
        }
    }

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (callerGone.IsCancellationRequested)
        {
            return;
        }

        try
        {
            await inner.FlushAsync(cancellationToken);
        }
        catch (Exception) when (callerGone.IsCancellationRequested)
        {
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    private void Copy(ReadOnlySpan<byte> buffer)
    {
        if (Overflowed || _body is not null || buffer.IsEmpty)
        {
            return;
        }

        if (_written + (long)buffer.Length > limit)
        {
            Overflowed = true;
            Release();
            return;
        }

        var needed = _written + buffer.Length;
        if (_buffer is null || _buffer.Length < needed)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Max(FirstBufferBytes, (_buffer?.Length ?? 0) * 2)));
            _buffer?.AsSpan(0, _written).CopyTo(larger);
            Release();
            _buffer = larger;
        }

        buffer.CopyTo(_buffer.AsSpan(_written));
        _written = needed;
    }

    private byte[] TakeBody()
    {
        var body = _buffer is null ? [] : _buffer.AsSpan(0, _written).ToArray();
        Release();
        return body;
    }

    private void Release()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }
}
