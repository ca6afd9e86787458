using System.Buffers;
using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Writes a <see cref="RawJson"/> for SignalR's MessagePack hub protocol by transcoding its JSON
/// bytes straight to MessagePack: objects become maps, arrays arrays, strings str (UTF-8 copied, not
/// decoded unless escaped), integers the smallest MessagePack int, other numbers float64, as a
/// JavaScript client's <c>JSON.parse</c> would type them.
/// </summary>
/// <remarks>
/// MessagePack writes a container's length before its items and JSON does not say it, so a value
/// with containers is read twice: once to count each container's items (in the order they open),
/// once to write. A token, a bare string, is read once.
/// </remarks>
internal sealed class RawJsonMessagePackFormatter : IMessagePackFormatter<RawJson?>
{
    public void Serialize(ref MessagePackWriter writer, RawJson? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }

        Transcode(value.Utf8.Span, ref writer);
    }

    public RawJson? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        throw new NotSupportedException("RawJson is what the gateway sends; it never reads one from a client.");

    /// <summary>Writes one JSON value (validated UTF-8) as one MessagePack value.</summary>
    internal static void Transcode(ReadOnlySpan<byte> json, ref MessagePackWriter writer)
    {
        var counts = CountContainerItems(json);
        try
        {
            var reader = new Utf8JsonReader(json);
            var next = 0;
            byte[]? unescaped = null;
            try
            {
                while (reader.Read())
                {
                    switch (reader.TokenType)
                    {
                        case JsonTokenType.StartObject:
                            writer.WriteMapHeader(counts![next++]);
                            break;
                        case JsonTokenType.StartArray:
                            writer.WriteArrayHeader(counts![next++]);
                            break;
                        case JsonTokenType.PropertyName:
                        case JsonTokenType.String:
                            WriteString(ref reader, ref writer, ref unescaped);
                            break;
                        case JsonTokenType.Number:
                            WriteNumber(ref reader, ref writer);
                            break;
                        case JsonTokenType.True:
                            writer.Write(true);
                            break;
                        case JsonTokenType.False:
                            writer.Write(false);
                            break;
                        case JsonTokenType.Null:
                            writer.WriteNil();
                            break;
                    }
                }
            }
            finally
            {
                if (unescaped is not null)
                {
                    ArrayPool<byte>.Shared.Return(unescaped);
                }
            }
        }
        finally
        {
            if (counts is not null)
            {
                ArrayPool<int>.Shared.Return(counts);
            }
        }
    }

    /// <returns>Each container's item count (map: properties), in the order the containers open; null when the value has none.</returns>
    private static int[]? CountContainerItems(ReadOnlySpan<byte> json)
    {
        var first = json.IndexOfAnyExcept(" \t\r\n"u8);
        if (first < 0 || (json[first] != '{' && json[first] != '['))
        {
            return null;
        }

        var counts = ArrayPool<int>.Shared.Rent(16);
        var open = ArrayPool<int>.Shared.Rent(16); // the containers still open: index into counts × 2, + 1 for an object
        var containers = 0;
        var depth = 0;
        try
        {
            var reader = new Utf8JsonReader(json);
            while (reader.Read())
            {
                var token = reader.TokenType;
                if (token is JsonTokenType.EndObject or JsonTokenType.EndArray)
                {
                    depth--;
                    continue;
                }

                // An array counts its values; an object its property names, not the values after them.
                if (depth > 0)
                {
                    var parent = open[depth - 1];
                    var parentIsObject = (parent & 1) == 1;
                    if (parentIsObject == (token == JsonTokenType.PropertyName))
                    {
                        counts[parent >> 1]++;
                    }
                }

                if (token is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    Grow(ref counts, containers);
                    Grow(ref open, depth);
                    counts[containers] = 0;
                    open[depth++] = (containers++ << 1) | (token == JsonTokenType.StartObject ? 1 : 0);
                }
            }

            return counts;
        }
        catch
        {
            ArrayPool<int>.Shared.Return(counts);
            throw;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(open);
        }
    }

    private static void Grow(ref int[] array, int index)
    {
        if (index < array.Length)
        {
            return;
        }

        var larger = ArrayPool<int>.Shared.Rent(array.Length * 2);
        array.AsSpan().CopyTo(larger);
        ArrayPool<int>.Shared.Return(array);
        array = larger;
    }

    private static void WriteString(ref Utf8JsonReader reader, ref MessagePackWriter writer, ref byte[]? unescaped)
    {
        if (!reader.ValueIsEscaped)
        {
            writer.WriteString(reader.ValueSpan);
            return;
        }

        // Unescaped text is never longer than its escaped form.
        if (unescaped is null || unescaped.Length < reader.ValueSpan.Length)
        {
            if (unescaped is not null)
            {
                ArrayPool<byte>.Shared.Return(unescaped);
            }

            unescaped = ArrayPool<byte>.Shared.Rent(reader.ValueSpan.Length);
        }

        var length = reader.CopyString(unescaped);
        writer.WriteString(unescaped.AsSpan(0, length));
    }

    private static void WriteNumber(ref Utf8JsonReader reader, ref MessagePackWriter writer)
    {
        if (reader.TryGetInt64(out var integer))
        {
            writer.Write(integer);
        }
        else if (reader.TryGetUInt64(out var unsigned))
        {
            writer.Write(unsigned);
        }
        else
        {
            writer.Write(reader.GetDouble());
        }
    }
}
