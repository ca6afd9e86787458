using System.Buffers;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A request body put together from parts and read in order: slices of a <see cref="BufferedBody"/>,
/// the few bytes a rewrite puts in, and streams read as they arrive (multipart sections after the id).
/// Each byte is copied once, into the reader's own buffer, so a rewritten body is never a second copy
/// of the first. No package offers a stream over such a mix (System.IO.Pipelines and
/// RecyclableMemoryStream each hold one buffer of their own), hence this small one.
/// </summary>
internal sealed class ForwardedBody : ReadOnlyStream
{
    private readonly IReadOnlyList<Part> _head;
    private readonly IAsyncEnumerable<Part>? _tail;
    private readonly CancellationToken _cancellation;
    private readonly Lock _gate = new();
    private bool _disposed;
    private int _next;
    private IAsyncEnumerator<Part>? _tailParts;
    private ReadOnlySequence<byte> _bytes;
    private Stream? _source;
    private bool _ended;

    /// <param name="head">Parts known now.</param>
    /// <param name="tail">Parts made while the body is read (sections still on their way from the client), or none.</param>
    public ForwardedBody(IReadOnlyList<Part> head, IAsyncEnumerable<Part>? tail, CancellationToken cancellation)
    {
        _head = head;
        _tail = tail;
        _cancellation = cancellation;
        if (tail is null)
        {
            long length = 0;
            foreach (var part in head)
            {
                length += part.Bytes.Length;
            }

            KnownLength = length;
        }
    }

    /// <summary>The length, when every part is known now (it then goes upstream as Content-Length); else null (chunked).</summary>
    public long? KnownLength { get; }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        while (true)
        {
            if (!_bytes.IsEmpty)
            {
                // Under the lock that disposing takes: a reader left running after the forward (an
                // HTTP client still sending when the answer came) must not copy from blocks already
                // back in the pool, which may hold another request's body by then.
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    var count = (int)Math.Min(buffer.Length, _bytes.Length);
                    _bytes.Slice(0, count).CopyTo(buffer.Span);
                    _bytes = _bytes.Slice(count);
                    return count;
                }
            }

            if (_source is not null)
            {
                var read = await _source.ReadAsync(buffer, cancellationToken);
                if (read > 0)
                {
                    return read;
                }

                _source = null;
            }

            if (!await MoveNextAsync())
            {
                return 0;
            }
        }
    }

    private async ValueTask<bool> MoveNextAsync()
    {
        Part part;
        if (_next < _head.Count)
        {
            part = _head[_next++];
        }
        else if (_tail is not null && !_ended)
        {
            _tailParts ??= _tail.GetAsyncEnumerator(_cancellation);
            if (!await _tailParts.MoveNextAsync())
            {
                _ended = true;
                return false;
            }

            part = _tailParts.Current;
        }
        else
        {
            return false;
        }

        (_bytes, _source) = (part.Bytes, part.Source);
        return true;
    }

    // Kestrel and HttpClient read asynchronously; a synchronous reader would block a thread on the client's upload.
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read the forwarded body asynchronously.");

    protected override void Dispose(bool disposing)
    {
        lock (_gate)
        {
            _disposed = true;
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        if (_tailParts is not null)
        {
            await _tailParts.DisposeAsync();
            _tailParts = null;
        }

        await base.DisposeAsync();
    }

    /// <summary>Bytes already in memory, or a stream to read to its end.</summary>
    internal readonly record struct Part(ReadOnlySequence<byte> Bytes, Stream? Source)
    {
        public static Part Of(ReadOnlySequence<byte> bytes) => new(bytes, null);

        public static Part Of(ReadOnlyMemory<byte> bytes) => new(new ReadOnlySequence<byte>(bytes), null);

        public static Part Of(Stream source) => new(ReadOnlySequence<byte>.Empty, source);
    }
}
