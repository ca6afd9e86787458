using System.Text.Json;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// One event of an SSE-era TROM.AI answer: a block whose data is <c>{"event":"token","data":"Hel"}</c>.
/// </summary>
/// <param name="Event">The JSON's <c>event</c> member. The names TROM.AI sends are shared string instances, so a token costs no name string.</param>
/// <param name="Data">The JSON's <c>data</c> member; <see cref="JsonValueKind.Undefined"/> when the block has none.</param>
/// <param name="Whole">The whole JSON object, for members beside <c>data</c>: <c>thinking</c> carries a top-level <c>duration</c>.</param>
internal readonly record struct UpstreamSseEvent(string Event, JsonElement Data, JsonElement Whole)
{
    private static readonly object?[] NoArguments = [];

    /// <summary>
    /// The arguments a SignalR client receives, the same as in the Socket.IO era so a client cannot
    /// tell which way TROM.AI streamed: <c>end</c> and <c>abort</c> carried no argument there (their SSE
    /// <c>"[DONE]"</c> is framing, not payload); <c>thinking</c>, new with SSE, gets its <c>duration</c> as
    /// a second argument because it would otherwise be lost; everything else is its <c>data</c>, unchanged.
    /// </summary>
    public object?[] ToArguments()
    {
        if (Data.ValueKind == JsonValueKind.Undefined
            || (Event is "end" or "abort" && Data.ValueKind == JsonValueKind.String && Data.ValueEquals("[DONE]"u8)))
        {
            return NoArguments;
        }

        if (Event == "thinking" && Whole.TryGetProperty("duration"u8, out var duration))
        {
            return [Data, duration];
        }

        return [Data];
    }
}
