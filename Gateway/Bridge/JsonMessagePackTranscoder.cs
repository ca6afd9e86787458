using System.Buffers;
using System.Globalization;
using System.Text.Json;
using MessagePack;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Turns a JSON value into the MessagePack value a client would expect, token by token, and back:
/// string ↔ str, integer ↔ int, any other number ↔ float64, object ↔ map (string keys), array ↔ array,
/// true/false ↔ bool, null ↔ nil. A bin becomes its base64 string (as a binary attachment does on the JSON
/// protocol), a timestamp its ISO 8601 string.
/// </summary>
internal static class JsonMessagePackTranscoder
{
    // As deep as Utf8JsonWriter writes (its own limit), so the MessagePack protocol never refuses a value the
    // JSON protocol would send.
    private const int MaxDepth = 1000;

    private static readonly JsonReaderOptions ReaderOptions = new() { CommentHandling = JsonCommentHandling.Skip, MaxDepth = MaxDepth };
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, MaxDepth = MaxDepth };

    /// <summary>Writes the one JSON value in <paramref name="utf8Json"/> as MessagePack.</summary>
    /// <exception cref="JsonException">The bytes are not one JSON value.</exception>
    public static void Write(ref MessagePackWriter writer, ReadOnlySpan<byte> utf8Json)
    {
        var reader = new Utf8JsonReader(utf8Json, ReaderOptions);
        Write(ref writer, ref reader);
    }

    /// <summary>
    /// Writes the JSON value that starts at <paramref name="reader"/>'s next token (or at its current one, when it
    /// stands on a value's first token) as MessagePack, and leaves the reader on that value's last token.
    /// </summary>
    public static void Write(ref MessagePackWriter writer, ref Utf8JsonReader reader)
    {
        if (reader.TokenType is JsonTokenType.None or JsonTokenType.PropertyName && !reader.Read())
        {
            throw new JsonException("Expected a JSON value, found the end of the input.");
        }

        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            WriteScalar(ref writer, ref reader); // most events: one token, nothing to count
            return;
        }

        // MessagePack writes a map's or array's length before its items; JSON shows it only at the end. A first
        // pass over a copy of the reader counts the items of every container, in the order they open, so the
        // second pass can write straight through: no tree, no buffer of the output.
        var counts = CountItems(reader);
        try
        {
            var container = 0;
            var depth = 0;
            do
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        writer.WriteMapHeader(counts[container++]);
                        depth++;
                        break;
                    case JsonTokenType.StartArray:
                        writer.WriteArrayHeader(counts[container++]);
                        depth++;
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName:
                        WriteString(ref writer, ref reader);
                        break;
                    default:
                        WriteScalar(ref writer, ref reader);
                        break;
                }
            }
            while (depth > 0 && reader.Read());
        }
        finally
        {
            ArrayPool<int>.Shared.Return(counts);
        }
    }

    /// <summary>Reads one MessagePack value as a <see cref="JsonElement"/>.</summary>
    /// <exception cref="MessagePackSerializationException">The value has no JSON form (NaN, a non-string map key, an extension).</exception>
    public static JsonElement ReadElement(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            Read(ref reader, json, options);
        }

        var jsonReader = new Utf8JsonReader(buffer.WrittenSpan, ReaderOptions);
        return JsonElement.ParseValue(ref jsonReader);
    }

    /// <summary>Reads one MessagePack value and writes it to <paramref name="json"/>.</summary>
    public static void Read(ref MessagePackReader reader, Utf8JsonWriter json, MessagePackSerializerOptions options)
    {
        options.Security.DepthStep(ref reader);
        try
        {
            switch (reader.NextMessagePackType)
            {
                case MessagePackType.Nil:
                    reader.ReadNil();
                    json.WriteNullValue();
                    break;
                case MessagePackType.Boolean:
                    json.WriteBooleanValue(reader.ReadBoolean());
                    break;
                case MessagePackType.Integer:
                    if (reader.NextCode == MessagePackCode.UInt64)
                    {
                        json.WriteNumberValue(reader.ReadUInt64()); // may be above long.MaxValue
                    }
                    else
                    {
                        json.WriteNumberValue(reader.ReadInt64());
                    }

                    break;
                case MessagePackType.Float:
                    WriteFloat(ref reader, json);
                    break;
                case MessagePackType.String:
                    json.WriteStringValue(Utf8(ref reader));
                    break;
                case MessagePackType.Binary:
                    var bytes = reader.ReadBytes() ?? ReadOnlySequence<byte>.Empty;
                    json.WriteBase64StringValue(bytes.IsSingleSegment ? bytes.FirstSpan : bytes.ToArray());
                    break;
                case MessagePackType.Array:
                    var length = reader.ReadArrayHeader();
                    json.WriteStartArray();
                    for (var i = 0; i < length; i++)
                    {
                        Read(ref reader, json, options);
                    }

                    json.WriteEndArray();
                    break;
                case MessagePackType.Map:
                    var count = reader.ReadMapHeader();
                    json.WriteStartObject();
                    for (var i = 0; i < count; i++)
                    {
                        WritePropertyName(ref reader, json);
                        Read(ref reader, json, options);
                    }

                    json.WriteEndObject();
                    break;
                case MessagePackType.Extension when reader.CreatePeekReader().ReadExtensionFormatHeader().TypeCode == ReservedMessagePackExtensionTypeCode.DateTime:
                    json.WriteStringValue(reader.ReadDateTime());
                    break;
                default:
                    throw new MessagePackSerializationException(
                        $"A MessagePack {reader.NextMessagePackType} (code 0x{reader.NextCode:x2}) has no JSON form; send JSON-like values (nil, bool, numbers, str, bin, array, map).");
            }
        }
        finally
        {
            reader.Depth--;
        }
    }

    private static void WriteScalar(ref MessagePackWriter writer, ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                WriteString(ref writer, ref reader);
                break;
            case JsonTokenType.Number when reader.TryGetInt64(out var integer):
                writer.Write(integer); // in the fewest bytes MessagePack has for it
                break;
            case JsonTokenType.Number when reader.TryGetUInt64(out var large):
                writer.Write(large);
                break;
            case JsonTokenType.Number:
                writer.Write(reader.GetDouble());
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
            default:
                throw new JsonException($"Expected a JSON value, found {reader.TokenType}.");
        }
    }

    private static void WriteString(ref MessagePackWriter writer, ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped && !reader.HasValueSequence)
        {
            writer.WriteString(reader.ValueSpan); // JSON text is UTF-8 already: the bytes go across as they are
            return;
        }

        var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var written = reader.CopyString(buffer); // unescaped, never longer than the escaped form
            writer.WriteString(buffer.AsSpan(0, written));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The number of items (properties or elements) of every object and array in the value at
    /// <paramref name="reader"/>, in the order they open. Rented: return it to <see cref="ArrayPool{T}.Shared"/>.
    /// </summary>
    private static int[] CountItems(Utf8JsonReader reader)
    {
        var counts = ArrayPool<int>.Shared.Rent(16);
        // The containers still open, innermost last: (index in counts << 1) | 1 for an array.
        var open = ArrayPool<int>.Shared.Rent(16);
        var containers = 0;
        var depth = 0;
        try
        {
            do
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        CountInArray(counts, open, depth);
                        Grow(ref counts, containers);
                        Grow(ref open, depth);
                        counts[containers] = 0;
                        open[depth++] = (containers++ << 1) | (reader.TokenType == JsonTokenType.StartArray ? 1 : 0);
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName:
                        counts[open[depth - 1] >> 1]++;
                        break;
                    default:
                        CountInArray(counts, open, depth);
                        break;
                }
            }
            while (depth > 0 && reader.Read());

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

    // A value counts as an item of the array around it; in an object its property name was counted instead.
    private static void CountInArray(int[] counts, int[] open, int depth)
    {
        if (depth > 0 && (open[depth - 1] & 1) == 1)
        {
            counts[open[depth - 1] >> 1]++;
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

    private static void WriteFloat(ref MessagePackReader reader, Utf8JsonWriter json)
    {
        // A float32 keeps its own shortest form (0.1f is 0.1, not 0.100000001490116).
        if (reader.NextCode == MessagePackCode.Float32)
        {
            var single = reader.ReadSingle();
            json.WriteNumberValue(float.IsFinite(single) ? single : throw NotFinite(single));
        }
        else
        {
            var number = reader.ReadDouble();
            json.WriteNumberValue(double.IsFinite(number) ? number : throw NotFinite(number));
        }
    }

    private static MessagePackSerializationException NotFinite(double number) =>
        new($"The MessagePack float {number} has no JSON form.");

    private static void WritePropertyName(ref MessagePackReader reader, Utf8JsonWriter json)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.String:
                json.WritePropertyName(Utf8(ref reader));
                break;
            case MessagePackType.Integer when reader.NextCode == MessagePackCode.UInt64:
                json.WritePropertyName(reader.ReadUInt64().ToString(CultureInfo.InvariantCulture));
                break;
            case MessagePackType.Integer:
                json.WritePropertyName(reader.ReadInt64().ToString(CultureInfo.InvariantCulture));
                break;
            default:
                throw new MessagePackSerializationException(
                    $"A MessagePack map key must be a str (or an integer) to become a JSON property name, not a {reader.NextMessagePackType}.");
        }
    }

    private static ReadOnlySpan<byte> Utf8(ref MessagePackReader reader)
    {
        if (reader.TryReadStringSpan(out var span))
        {
            return span;
        }

        return reader.ReadStringSequence() is { } sequence ? sequence.ToArray() : [];
    }
}
