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
    private readonly ArrayBufferWriter<byte> _copy = new();

    /// <summary>The body as it was written (still encoded, if TROM.AI compressed it).</summary>
    public ReadOnlyMemory<byte> Body => _copy.WrittenMemory;

    /// <summary>True when the body was larger than the limit: <see cref="Body"/> holds only its start.</summary>
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
        if (Overflowed)
        {
            return;
        }

        if (_copy.WrittenCount + buffer.Length > limit)
        {
            Overflowed = true;
            return;
        }

        _copy.Write(buffer);
    }
}
