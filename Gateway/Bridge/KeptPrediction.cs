namespace TromAi.Gateway.Bridge;

/// <summary>
/// A prediction that runs to its end for its stream, whoever reads it: started by <c>Predict</c> or by a
/// REST request, it ends with TROM.AI's answer, an explicit cancel, <c>Gateway:Streams:DetachedTimeout</c>
/// after its client went away (<see cref="Detach"/>), or a drain that outlasted its timeout. Every way
/// out ends its stream, so a resumer always learns how it ended.
/// </summary>
internal abstract class KeptPrediction : IDisposable
{
    private readonly PredictionRuns _runs;
    private readonly TimeProvider _time;
    private readonly TimeSpan _detachedTimeout;
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private ITimer? _detached;
    private int _cancelled;

    protected KeptPrediction(IStreamWriter stream, PredictionRuns runs, TimeSpan detachedTimeout, TimeProvider time)
    {
        Stream = stream;
        _runs = runs;
        _time = time;
        _detachedTimeout = detachedTimeout;
        runs.Add(this);
    }

    public IStreamWriter Stream { get; }

    /// <summary>Completes once the prediction is over and everything it held (its upstream session, above all) is let go.</summary>
    public Task Finished => _finished.Task;

    protected bool IsCancelled => Volatile.Read(ref _cancelled) != 0;

    /// <summary>
    /// Its client went away without cancelling (a reload, a lost network): it runs on, its events kept,
    /// for <c>Gateway:Streams:DetachedTimeout</c> at most.
    /// </summary>
    public void Detach()
    {
        lock (_gate)
        {
            if (_finished.Task.IsCompleted || _detached is not null)
            {
                return;
            }

            _detached = _time.CreateTimer(static state => ((KeptPrediction)state!).DetachedTooLong(), this, _detachedTimeout, Timeout.InfiniteTimeSpan);
        }
    }

    private void DetachedTooLong() =>
        Cancel($"The prediction was still running {_detachedTimeout} (Gateway:Streams:DetachedTimeout) after its client went away; the gateway aborted it.");

    /// <summary>Ends the stream with <paramref name="reason"/> at once, and stops the prediction upstream.</summary>
    public void Cancel(string reason)
    {
        if (Stream.IsEnded || Interlocked.Exchange(ref _cancelled, 1) != 0)
        {
            return; // over already, or being stopped
        }

        Stream.Fail(reason);
        OnCancelled();
    }

    /// <summary>Stops the prediction upstream, in the background; <see cref="Finish"/> follows once it has stopped.</summary>
    protected abstract void OnCancelled();

    /// <summary>The prediction is over and has let go of what it held.</summary>
    protected void Finish()
    {
        lock (_gate)
        {
            _detached?.Dispose();
            _finished.TrySetResult();
        }

        _runs.Remove(this);
        Dispose();
    }

    /// <summary>Called by <see cref="Finish"/>; a cancel that comes after it finds nothing left to stop.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
