using Microsoft.AspNetCore.SignalR;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The errors a resume can end with, each saying what happened and what to do. An id that is unknown,
/// expired or another principal's gets the same answer, so that an id reveals nothing about a stream
/// its holder may not read.
/// </summary>
internal static class StreamErrors
{
    public static HubException Unknown(string streamId, TimeSpan retention) =>
        new($"No stream {streamId} is kept: the id is unknown, or its prediction ended more than {retention} ago (Gateway:Streams:Retention).");

    public static HubException BadAfterSeq(long afterSeq) =>
        new($"afterSeq must be 0 (from the start) or the sequence number of the last item you got, not {afterSeq}.");

    public static HubException Trimmed(string streamId, long afterSeq, long firstKept) =>
        new($"Stream {streamId} no longer keeps events {afterSeq + 1} to {firstKept - 1} (Gateway:Streams:MaxEventsPerStream, MaxBytesPerStream or MaxTotalBytes): "
            + $"resume with afterSeq {firstKept - 1} or more to get what it still keeps.");

    public static HubException WriterLost(string streamId) =>
        new($"The gateway instance running the prediction of stream {streamId} stopped before its answer was complete; ask again.");

    public static HubException Unavailable(string streamId) =>
        new($"Stream {streamId} cannot be read right now: the gateway's shared store (Redis) is unavailable. Resume again shortly with the last sequence number you got.");

    public const string Cancelled = "The prediction was cancelled by its client.";
}
