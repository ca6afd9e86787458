using MessagePack;
using MessagePack.Formatters;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Writes an upstream event's argument, kept as the JSON bytes it arrived in, as the MessagePack value of
/// that JSON (<see cref="JsonMessagePackTranscoder"/>): a token's UTF-8 goes across as a str without being
/// decoded. Clients never send one.
/// </summary>
internal sealed class RawJsonMessagePackFormatter : IMessagePackFormatter<RawJson?>
{
    public static readonly RawJsonMessagePackFormatter Instance = new();

    private RawJsonMessagePackFormatter()
    {
    }

    public void Serialize(ref MessagePackWriter writer, RawJson? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }

        JsonMessagePackTranscoder.Write(ref writer, value.Utf8.Span);
    }

    public RawJson? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) =>
        throw new MessagePackSerializationException("An upstream event's argument is what the gateway sends; it never reads one.");
}
