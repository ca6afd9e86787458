namespace TromAi.Gateway.Bridge;

internal enum StreamItemKind
{
    /// <summary>First of every read: what the stream is (<see cref="StreamItem.Start"/>); sequence number 0.</summary>
    Header,

    /// <summary>An upstream event: <see cref="StreamItem.Name"/>, and its arguments as one JSON array.</summary>
    Event,

    /// <summary>The last item of a stream that ended with TROM.AI's answer, as JSON.</summary>
    Result,
}

/// <summary>One item of a kept stream as a reader gets it. A stream that ended with an error ends its reads with a HubException instead of a result.</summary>
/// <param name="Seq">Its place in the stream: 1, 2, ... for events, the next one for the result.</param>
/// <param name="Json">An event's arguments (a JSON array), or the result's answer.</param>
internal readonly record struct StreamItem(StreamItemKind Kind, long Seq, string? Name, ReadOnlyMemory<byte> Json, StreamStart? Start = null)
{
    public static StreamItem Header(StreamStart start) => new(StreamItemKind.Header, 0, null, default, start);
}
