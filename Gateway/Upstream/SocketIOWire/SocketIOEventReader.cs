using System.Text.Json;

namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// Reads an EVENT packet's data, <c>["name", arg...]</c>, once, from its UTF-8 bytes: the name
/// becomes an interned string when TROM.AI knows it, and each argument stays the exact bytes it
/// arrived as, validated by this one read and never decoded: the one argument of nearly every event as
/// its bytes (<see cref="EventArguments.Json"/>), several as <see cref="RawJson"/>s.
/// </summary>
internal static class SocketIOEventReader
{
    private const int StackArguments = 8;

    /// <summary>Reads the event; the arguments are copied out of <paramref name="data"/> (one array for all of them), so the caller may reuse its buffer.</summary>
    /// <exception cref="SocketIOProtocolException">The data is not a JSON array starting with a string.</exception>
    public static string Read(ReadOnlySpan<byte> data, out EventArguments args)
    {
        Span<int> stackBounds = stackalloc int[StackArguments * 2];
        var bounds = stackBounds;
        int[]? rented = null;
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                throw new SocketIOProtocolException("an event whose data is not a JSON array");
            }

            if (!reader.Read() || reader.TokenType != JsonTokenType.String)
            {
                throw new SocketIOProtocolException("an event without a name");
            }

            var name = (reader.ValueIsEscaped ? null : SocketIOEventNames.Find(reader.ValueSpan)) ?? reader.GetString()!;
            var count = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                var start = (int)reader.TokenStartIndex;
                reader.Skip(); // a container: to its end; a scalar: stays
                if (count * 2 == bounds.Length)
                {
                    var larger = System.Buffers.ArrayPool<int>.Shared.Rent(bounds.Length * 2);
                    bounds.CopyTo(larger);
                    if (rented is not null)
                    {
                        System.Buffers.ArrayPool<int>.Shared.Return(rented);
                    }

                    rented = larger;
                    bounds = larger;
                }

                bounds[count * 2] = start;
                bounds[count * 2 + 1] = (int)reader.BytesConsumed;
                count++;
            }

            if (reader.Read())
            {
                throw new SocketIOProtocolException("an event with data after its array");
            }

            args = count switch
            {
                0 => EventArguments.Of([]),
                1 => EventArguments.Json(data[bounds[0]..bounds[1]].ToArray()),
                _ => EventArguments.Of(Slice(data, bounds[..(count * 2)])),
            };
            return name;
        }
        catch (JsonException e)
        {
            throw new SocketIOProtocolException($"an event that is not valid JSON ({e.Message})", e);
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<int>.Shared.Return(rented);
            }
        }
    }

    private static object?[] Slice(ReadOnlySpan<byte> data, ReadOnlySpan<int> bounds)
    {
        var first = bounds[0];
        var copy = data[first..bounds[^1]].ToArray();
        var args = new object?[bounds.Length / 2];
        for (var i = 0; i < args.Length; i++)
        {
            var start = bounds[i * 2] - first;
            args[i] = new RawJson(copy.AsMemory(start, bounds[i * 2 + 1] - first - start));
        }

        return args;
    }
}
