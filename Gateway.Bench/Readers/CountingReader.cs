namespace TromAi.Gateway.Bench.Readers;

/// <summary>
/// One upstream Socket.IO session read by one of the two readers the reader scenario compares, doing with each
/// event what the gateway does before its relay queue and nothing more: it counts, so that what the scenario
/// measures is the reader.
/// </summary>
internal abstract class CountingReader : IAsyncDisposable
{
    private long _events;
    private TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public abstract string SocketId { get; }

    public long Events => Interlocked.Read(ref _events);

    /// <summary>Completes at the next <c>end</c> event.</summary>
    public Task Ended => Volatile.Read(ref _ended).Task;

    public void ExpectNextStream() => Volatile.Write(ref _ended, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <param name="name">The event's name; compared by value, as the relay's metrics do.</param>
    protected void Count(string name)
    {
        Interlocked.Increment(ref _events);
        if (name == "end")
        {
            Volatile.Read(ref _ended).TrySetResult();
        }
    }

    public abstract ValueTask DisposeAsync();
}
