using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// SignalR's JSON hub protocol, skipping messages of a type it does not know. The JSON protocol
/// means to ignore them (a newer client's types), but it reports one as "no message": SignalR then
/// waits for the client's next bytes before it parses whatever came behind it, so an invocation sent
/// after an unknown message went unanswered until the client's next ping, forever for a client that
/// does not ping. Skipping here lets everything behind it through at once.
/// </summary>
internal sealed class ForwardCompatibleJsonHubProtocol(IOptions<JsonHubProtocolOptions> options) : IHubProtocol
{
    private readonly JsonHubProtocol _json = new(options);

    public string Name => _json.Name;

    public int Version => _json.Version;

    public TransferFormat TransferFormat => _json.TransferFormat;

    public bool TryParseMessage(ref ReadOnlySequence<byte> input, IInvocationBinder binder, [NotNullWhen(true)] out HubMessage? message)
    {
        while (true)
        {
            var before = input.Length;
            if (_json.TryParseMessage(ref input, binder, out message))
            {
                return true;
            }

            if (input.Length == before)
            {
                return false; // an incomplete message: wait for the rest
            }

            // A whole message of an unknown type was consumed: go on with what follows it.
        }
    }

    public void WriteMessage(HubMessage message, IBufferWriter<byte> output) => _json.WriteMessage(message, output);

    public ReadOnlyMemory<byte> GetMessageBytes(HubMessage message) => _json.GetMessageBytes(message);

    public bool IsVersionSupported(int version) => _json.IsVersionSupported(version);
}
