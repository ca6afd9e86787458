using System.Buffers;
using System.Net;
using Microsoft.IO;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// One request's buffered body, in pooled blocks of <see cref="BodyBudget.Step"/> bytes: written
/// once, as it is read from the client, and never copied whole again. Every byte is reserved in the
/// <see cref="BodyBudget"/> before it is read; disposing returns the blocks and the reservation.
/// </summary>
internal sealed class BufferedBody(BodyBudget budget, RecyclableMemoryStream bytes) : IDisposable
{
    private long _reserved;

    public long Length => bytes.Length;

    /// <summary>
    /// The bytes written so far, as a sequence over the pooled blocks (no copy). Valid until the next
    /// write; the proxy takes it once writing is over.
    /// </summary>
    public ReadOnlySequence<byte> Bytes => bytes.GetReadOnlySequence();

    /// <summary>Reserves room for <paramref name="total"/> bytes in all (a declared Content-Length, before reading it).</summary>
    public bool TryReserve(long total)
    {
        var more = total - _reserved;
        if (more <= 0)
        {
            return true;
        }

        if (!budget.TryReserve(more))
        {
            return false;
        }

        _reserved += more;
        return true;
    }

    /// <summary>
    /// Appends all of <paramref name="source"/>, or exactly <paramref name="expected"/> bytes of it
    /// when its length is known (a Content-Length), straight into the pooled blocks.
    /// </summary>
    /// <exception cref="PredictionBodyException">503 past the budget; 413 past <paramref name="limit"/>.</exception>
    public async Task AppendAsync(Stream source, long? expected, long limit, CancellationToken cancellationToken)
    {
        var end = Length + expected;
        while (end is null || Length < end)
        {
            var room = bytes.GetMemory(); // the rest of the current block, or a new one
            if (end is not null && room.Length > end - Length)
            {
                room = room[..(int)(end.Value - Length)];
            }

            if (!TryReserve(Length + room.Length))
            {
                throw PredictionBodyException.OverBudget(budget.Limit);
            }

            var read = await source.ReadAsync(room, cancellationToken);
            if (read == 0)
            {
                return;
            }

            bytes.Advance(read);
            if (Length > limit)
            {
                throw PredictionBodyException.TooLarge(limit);
            }
        }
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        if (!TryReserve(Length + data.Length))
        {
            throw PredictionBodyException.OverBudget(budget.Limit);
        }

        bytes.Write(data);
    }

    public void Dispose()
    {
        bytes.Dispose();
        budget.Release(_reserved);
        _reserved = 0;
    }
}
