using System.Text;
using System.Text.Json.Serialization;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// One JSON value as the UTF-8 bytes it arrived in from TROM.AI, already validated by the reader
/// that cut it out of its frame. A token arrives as bytes and leaves as bytes: SignalR's JSON hub
/// protocol copies these (<see cref="RawJsonConverter"/>), its MessagePack protocol transcodes them
/// in one pass (the hub's MessagePack resolver, in Bridge); nothing builds a JsonElement or a string.
/// </summary>
/// <remarks>
/// The JSON converter is attached to the type, not registered in options, so every JSON serializer that
/// meets the value (the hub protocol, the Redis backplane, a Predict stream item) writes it the same way.
/// </remarks>
[JsonConverter(typeof(RawJsonConverter))]
internal sealed class RawJson
{
    /// <param name="utf8">Exactly one JSON value; the caller has validated it (it is written without another check).</param>
    public RawJson(ReadOnlyMemory<byte> utf8) => Utf8 = utf8;

    public ReadOnlyMemory<byte> Utf8 { get; private set; }

    /// <summary>
    /// Points this instance at other bytes. Only for an instance its owner never hands on: the relay's
    /// own per connection, lent to SignalR for one awaited send at a time (see ConnectionRelay).
    /// </summary>
    internal void Reuse(ReadOnlyMemory<byte> utf8) => Utf8 = utf8;

    /// <summary>For logs and test failures only: the hot path never decodes the bytes.</summary>
    public override string ToString() => Encoding.UTF8.GetString(Utf8.Span);
}
