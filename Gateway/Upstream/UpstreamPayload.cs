using System.Runtime.InteropServices;
using System.Text.Json;
using SocketIOClient;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// A Socket.IO event's arguments as SocketIOClient 3.0.6 hands them over (the polling transport
/// only, see <see cref="PollingUpstreamConnection"/>), in the form the WebSocket transport gives them:
/// each a <see cref="RawJson"/>, so the relay and the hub protocols see one kind of argument.
/// </summary>
internal static class UpstreamPayload
{
    private static readonly object?[] NoArguments = [];

    /// <summary>
    /// Each argument is the UTF-8 text the client parsed it from, copied once. Binary attachments,
    /// <c>{"_placeholder":true,"num":N}</c> plus a byte array, become base64 strings in place.
    /// </summary>
    public static object?[] ToArguments(SocketIOResponse response)
    {
        var count = response.Count;
        if (count == 0)
        {
            return NoArguments;
        }

        var args = new object?[count];
        for (var i = 0; i < count; i++)
        {
            args[i] = ToRawJson(response.GetValue(i));
        }

        if (response.InComingBytes is { Count: > 0 } attachments)
        {
            BinaryAttachments.Inline(args, attachments);
        }

        return args;
    }

    private static RawJson ToRawJson(JsonElement value) => new(JsonMarshal.GetRawUtf8Value(value).ToArray());
}
