using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Writes one of the gateway's own types (a <c>gateway:</c> notice) as the MessagePack value of the JSON the JSON
/// protocol sends for it, with the same property names (<c>{reason}</c>, <c>{attempts, downtimeMs}</c>), where
/// MessagePack's own contractless formatter would use the C# names. The notices are rare: going through JSON
/// text costs nothing that matters and keeps one definition of their shape.
/// </summary>
internal sealed class JsonShapedMessagePackFormatter<T>(JsonSerializerOptions json) : IMessagePackFormatter<T>
{
    public void Serialize(ref MessagePackWriter writer, T value, MessagePackSerializerOptions options) =>
        JsonMessagePackTranscoder.Write(ref writer, JsonSerializer.SerializeToUtf8Bytes(value, json));

    public T Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        JsonMessagePackTranscoder.ReadElement(ref reader, options).Deserialize<T>(json)!;
}
