using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The one writer of a kept stream, on the instance where its events arrive. Nothing here waits: an
/// event is kept in memory at once, and a shared store (Redis) is written behind, in batches.
/// </summary>
internal interface IStreamWriter
{
    StreamStart Start { get; }

    /// <summary>The sequence number of the last event appended; 0 before the first.</summary>
    long LastSeq { get; }

    /// <summary>True once <see cref="Complete"/> or <see cref="Fail"/> has been called: later calls are ignored.</summary>
    bool IsEnded { get; }

    /// <summary>Keeps an upstream event with the next sequence number; its arguments are written as one JSON array.</summary>
    void Append(string name, object?[] args);

    /// <summary>The same, for arguments as the upstream reader handed them over (usually one JSON value's bytes).</summary>
    void Append(string name, EventArguments args);

    /// <summary>Ends the stream with TROM.AI's answer (JSON), which readers get as its last item.</summary>
    void Complete(ReadOnlyMemory<byte> answer);

    /// <summary>Ends the stream with an error, which readers get as a HubException after its events.</summary>
    void Fail(string message);

    /// <summary>Reads the stream on this instance, as <see cref="IStreamStore.ReadAsync"/> does, without asking any store.</summary>
    IAsyncEnumerable<StreamItem> ReadAsync(long afterSeq, CancellationToken cancellationToken);
}
