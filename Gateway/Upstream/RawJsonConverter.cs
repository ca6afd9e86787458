using System.Text.Json;
using System.Text.Json.Serialization;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Writes a <see cref="RawJson"/> as the bytes it holds. They were validated when they were read
/// from the upstream's frame, so the writer skips validating them again: the JSON hub protocol then
/// copies a token instead of re-encoding it.
/// </summary>
internal sealed class RawJsonConverter : JsonConverter<RawJson>
{
    public override RawJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        // Only for completeness (a client never sends one to the gateway): copy the value out of the reader's buffer.
        using var document = JsonDocument.ParseValue(ref reader);
        return new RawJson(JsonSerializer.SerializeToUtf8Bytes(document.RootElement));
    }

    public override void Write(Utf8JsonWriter writer, RawJson value, JsonSerializerOptions options) =>
        writer.WriteRawValue(value.Utf8.Span, skipInputValidation: true);
}
