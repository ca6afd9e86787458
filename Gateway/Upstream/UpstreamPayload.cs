using System.Buffers;
using System.Text.Json;
using SocketIOClient;

namespace TromAi.Gateway.Upstream;

/// <summary>Turns a Socket.IO event's arguments into values a SignalR hub protocol writes unchanged.</summary>
internal static class UpstreamPayload
{
    private static readonly object?[] NoArguments = [];

    /// <summary>
    /// Each argument stays the <see cref="JsonElement"/> the client already parsed, so no value is
    /// re-read or re-typed on the way through. Binary attachments, which reach us as
    /// <c>{"_placeholder":true,"num":N}</c> plus a byte array, become base64 strings in place.
    /// </summary>
    public static object?[] ToArguments(SocketIOResponse response)
    {
        var count = response.Count;
        if (count == 0)
        {
            return NoArguments;
        }

        var attachments = response.InComingBytes;
        var args = new object?[count];
        for (var i = 0; i < count; i++)
        {
            var value = response.GetValue(i);
            args[i] = attachments is { Count: > 0 } ? InlineAttachments(value, attachments) : value;
        }

        return args;
    }

    private static JsonElement InlineAttachments(JsonElement value, List<byte[]> attachments)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, value, attachments);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    private static void Write(Utf8JsonWriter writer, JsonElement value, List<byte[]> attachments)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object when TryGetAttachment(value, attachments, out var bytes):
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

    private static bool TryGetAttachment(JsonElement value, List<byte[]> attachments, out byte[] bytes)
    {
        bytes = [];
        if (value.TryGetProperty("_placeholder", out var placeholder) && placeholder.ValueKind == JsonValueKind.True
            && value.TryGetProperty("num", out var num) && num.TryGetInt32(out var index)
            && (uint)index < (uint)attachments.Count)
        {
            bytes = attachments[index];
            return true;
        }

        return false;
    }
}
