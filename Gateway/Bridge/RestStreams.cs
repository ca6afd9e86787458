using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The streams of REST predictions whose events arrive on a hub connection of this instance (Socket.IO
/// mode), by stream id: begun before the POST goes to TROM.AI, ended when its answer is in, by the proxy
/// of whichever instance forwarded the POST (this one's, or another's through <see cref="IRemoteRestStreams"/>).
/// </summary>
internal sealed class RestStreams(
    IStreamStore store, PredictionRuns runs, PredictionStreams calls, IOptions<GatewayOptions> options, TimeProvider time, ILogger<RestStreams> logger)
{
    private readonly ConcurrentDictionary<string, RestRecording> _recordings = new(StringComparer.Ordinal);

    /// <summary>
    /// Starts keeping what <paramref name="connection"/> receives from now on, as a new stream; null when
    /// the connection has no session (SSE mode) or has ended, or <paramref name="streamId"/> is taken.
    /// </summary>
    /// <param name="streamId">The id another instance chose (it forwards the POST and reports its end); a new one when null.</param>
    public StreamStart? Begin(BridgedConnection connection, string chatflowId, string? chatId, string? streamId = null)
    {
        // A given id is taken only by a repeated request: recording twice under one id would end the first never.
        if (connection.Session is null || (streamId is not null && _recordings.ContainsKey(streamId)) || connection.TryHold() is not { } hold)
        {
            return null;
        }

        var start = new StreamStart(streamId ?? StreamIds.New(), chatflowId, chatId, connection.Owner);
        var recording = new RestRecording(connection, hold, store.Create(start), this, calls, runs, options.Value, time, logger);
        _recordings[start.StreamId] = recording;
        recording.Begin();
        return start;
    }

    /// <summary>The POST of stream <paramref name="streamId"/> has its answer; nothing happens for a stream that ended otherwise meanwhile.</summary>
    public Task EndAsync(string streamId, RestAnswer answer) =>
        _recordings.TryGetValue(streamId, out var recording) ? recording.EndAsync(answer) : Task.CompletedTask;

    internal void Remove(RestRecording recording) => _recordings.TryRemove(KeyValuePair.Create(recording.Stream.Start.StreamId, recording));
}
