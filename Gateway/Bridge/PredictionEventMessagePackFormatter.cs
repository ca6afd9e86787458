using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// A <c>Predict</c> stream item as the map <c>{"event": str, "data": value, "seq": int}</c>, the keys the JSON protocol
/// gives it, so a client reads the same shape whichever protocol it chose.
/// </summary>
internal sealed class PredictionEventMessagePackFormatter : IMessagePackFormatter<PredictionEvent>
{
    public static readonly PredictionEventMessagePackFormatter Instance = new();

    private PredictionEventMessagePackFormatter()
    {
    }

    public void Serialize(ref MessagePackWriter writer, PredictionEvent value, MessagePackSerializerOptions options)
    {
        writer.WriteMapHeader(3);
        writer.Write("event");
        writer.Write(value.Event);
        writer.Write("data");
        WriteData(ref writer, value.Data, options);
        writer.Write("seq");
        writer.Write(value.Seq);
    }

    public PredictionEvent Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        string? name = null;
        object? data = null;
        long seq = 0;
        var count = reader.ReadMapHeader();
        for (var i = 0; i < count; i++)
        {
            switch (reader.ReadString())
            {
                case "event":
                    name = reader.ReadString();
                    break;
                case "data":
                    data = JsonMessagePackTranscoder.ReadElement(ref reader, options);
                    break;
                case "seq":
                    seq = reader.ReadInt64();
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        return new PredictionEvent(name ?? throw new MessagePackSerializationException("A prediction event needs an \"event\"."), data) { Seq = seq };
    }

    // Data is one argument (RawJson over Socket.IO, a JsonElement over SSE and for the result), null for none, or the
    // arguments of an event that has several.
    private static void WriteData(ref MessagePackWriter writer, object? data, MessagePackSerializerOptions options)
    {
        switch (data)
        {
            case null:
                writer.WriteNil();
                break;
            case RawJson raw:
                // A kept event, or an argument of the gateway's own Socket.IO reader: its bytes, transcoded in one pass.
                RawJsonMessagePackFormatter.Instance.Serialize(ref writer, raw, options);
                break;
            case JsonElement element:
                JsonElementMessagePackFormatter.Instance.Serialize(ref writer, element, options);
                break;
            case object?[] items:
                writer.WriteArrayHeader(items.Length);
                foreach (var item in items)
                {
                    WriteData(ref writer, item, options);
                }

                break;
            default:
                MessagePackSerializer.Serialize(data.GetType(), ref writer, data, options);
                break;
        }
    }
}
