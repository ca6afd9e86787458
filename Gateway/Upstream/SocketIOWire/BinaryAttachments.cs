using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// Puts a binary event's attachments in place of their placeholders,
/// <c>{"_placeholder":true,"num":N}</c>, as base64 strings: what a SignalR client receives for a
/// Socket.IO binary attachment. Rare (no TROM.AI event carries one), so it may parse.
/// </summary>
internal static class BinaryAttachments
{
    // The same escaping as SignalR's JSON hub protocol writer, so an argument reads the same either way.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Inline(object?[] args, IReadOnlyList<byte[]> attachments)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is RawJson raw && raw.Utf8.Span.IndexOf("\"_placeholder\""u8) >= 0)
            {
                args[i] = Inline(raw, attachments);
            }
        }
    }

    private static RawJson Inline(RawJson value, IReadOnlyList<byte[]> attachments)
    {
        using var document = JsonDocument.Parse(value.Utf8);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            Write(writer, document.RootElement, attachments);
        }

        return new RawJson(buffer.WrittenMemory);
    }

    private static void Write(Utf8JsonWriter writer, JsonElement value, IReadOnlyList<byte[]> attachments)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object when Attachment(value, attachments) is { } bytes:
                writer.WriteBase64StringValue(bytes);
                break;
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in value.EnumerateObject())
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value, attachments);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in value.EnumerateArray())
                {
                    Write(writer, item, attachments);
                }

                writer.WriteEndArray();
                break;
            default:
                value.WriteTo(writer);
                break;
        }
    }

    /// <summary>The attachment a placeholder stands for; null for an ordinary object (or a number out of range, left as it came).</summary>
    private static byte[]? Attachment(JsonElement value, IReadOnlyList<byte[]> attachments) =>
        value.TryGetProperty("_placeholder", out var placeholder) && placeholder.ValueKind == JsonValueKind.True
        && value.TryGetProperty("num", out var num) && num.TryGetInt32(out var index) && (uint)index < (uint)attachments.Count
            ? attachments[index]
            : null;
}
