namespace TromAi.Gateway.Bridge;

/// <summary>
/// Where prediction streams are kept for resuming: in memory when the gateway runs alone
/// (<see cref="MemoryStreamStore"/>), in Redis when instances share the work, so that a stream can be
/// resumed on any of them. Streams are written on the instance that runs the prediction and read anywhere.
/// </summary>
internal interface IStreamStore
{
    /// <summary>Starts keeping a stream written on this instance.</summary>
    IStreamWriter Create(StreamStart start);

    /// <summary>
    /// The stream's header, its kept events after <paramref name="afterSeq"/>, then each new one as it
    /// comes, then its result. Throws a HubException with a precise message when the stream is unknown,
    /// expired, no longer holds the events after <paramref name="afterSeq"/>, ended with an error, lost
    /// its writer (the instance running it died), or cannot be read right now.
    /// </summary>
    /// <param name="reader">Who reads, checked against the stream's owner when <paramref name="checkOwner"/> is set (gateway authentication on).</param>
    IAsyncEnumerable<StreamItem> ReadAsync(string streamId, long afterSeq, string? reader, bool checkOwner, CancellationToken cancellationToken);

    /// <summary>Completes once everything written so far is where other instances read it (or <paramref name="timeout"/> passed): before a drain lets the process exit.</summary>
    Task FlushAsync(TimeSpan timeout);
}
