using System.Text.Json;
using MessagePack;
using MessagePack.Formatters;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The formatters the hub's MessagePack protocol needs beyond MessagePack's own: JSON values
/// (<see cref="JsonElement"/>, and an upstream event's argument kept as its bytes, <see cref="RawJson"/>) as their
/// natural MessagePack values, <see cref="PredictionEvent"/> and the gateway's notices with the same keys as on the
/// JSON protocol. Every other type is left to the resolvers after it.
/// </summary>
internal sealed class GatewayMessagePackResolver(JsonSerializerOptions json) : IFormatterResolver
{
    public IMessagePackFormatter<T>? GetFormatter<T>()
    {
        if (typeof(T) == typeof(JsonElement))
        {
            return (IMessagePackFormatter<T>)(object)JsonElementMessagePackFormatter.Instance;
        }

        if (typeof(T) == typeof(RawJson))
        {
            return (IMessagePackFormatter<T>)(object)RawJsonMessagePackFormatter.Instance;
        }

        if (typeof(T) == typeof(PredictionEvent))
        {
            return (IMessagePackFormatter<T>)(object)PredictionEventMessagePackFormatter.Instance;
        }

        // The notices (GatewayEvents) and anything else of ours that reaches a client.
        return typeof(T).Assembly == typeof(GatewayMessagePackResolver).Assembly && !typeof(T).IsEnum
            ? new JsonShapedMessagePackFormatter<T>(json)
            : null;
    }
}
