using MessagePack;
using MessagePack.Resolvers;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

internal static class GatewayMessagePackProtocol
{
    /// <summary>
    /// Lets clients choose SignalR's MessagePack protocol (.NET <c>AddMessagePackProtocol()</c>, JS
    /// <c>@microsoft/signalr-protocol-msgpack</c>) beside JSON, with <see cref="GatewayMessagePackResolver"/> ahead
    /// of SignalR's own resolvers. The JSON payload options give the gateway's own types their property names.
    /// </summary>
    public static ISignalRServerBuilder AddGatewayMessagePackProtocol(this ISignalRServerBuilder signalR)
    {
        signalR.AddMessagePackProtocol();
        signalR.Services.AddOptions<MessagePackHubProtocolOptions>().Configure<IOptions<JsonHubProtocolOptions>>((messagePack, json) =>
            messagePack.SerializerOptions = messagePack.SerializerOptions.WithResolver(CompositeResolver.Create(
                new GatewayMessagePackResolver(json.Value.PayloadSerializerOptions),
                messagePack.SerializerOptions.Resolver)));
        return signalR;
    }
}
