using System.Runtime.InteropServices;
using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Writes a <see cref="JsonElement"/> (an upstream event's argument, TROM.AI's answer) as the MessagePack value
/// of that JSON, read straight from the bytes the element was parsed from: no JSON text is written on the way.
/// Reads a MessagePack value (a <c>Predict</c> request) back into a <see cref="JsonElement"/>.
/// </summary>
internal sealed class JsonElementMessagePackFormatter : IMessagePackFormatter<JsonElement>
{
    public static readonly JsonElementMessagePackFormatter Instance = new();

    private JsonElementMessagePackFormatter()
    {
    }

    public void Serialize(ref MessagePackWriter writer, JsonElement value, MessagePackSerializerOptions options)
    {
        if (value.ValueKind == JsonValueKind.Undefined)
        {
            writer.WriteNil(); // default(JsonElement): no value at all
            return;
        }

        JsonMessagePackTranscoder.Write(ref writer, JsonMarshal.GetRawUtf8Value(value));
    }

    public JsonElement Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        JsonMessagePackTranscoder.ReadElement(ref reader, options);
}
