using System.Collections.Concurrent;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Group changes this instance has asked the other instances for, each waiting for the ack of the instance that
/// owns the connection. The caller bounds the wait and forgets the ack when it gives up, so an ack that never comes
/// leaves nothing behind.
/// </summary>
internal sealed class GroupCommandAcks : IDisposable
{
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _pending = new();
    private int _lastId;
    private volatile bool _disposed;

    /// <summary>A new ack id, and the task its ack completes. Create it before publishing, so a fast ack is not missed.</summary>
    public (int Id, Task Acked) Create()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var id = Interlocked.Increment(ref _lastId);
        var acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = acked;
        return (id, acked.Task);
    }

    public void Complete(int id)
    {
        if (_pending.TryRemove(id, out var acked))
        {
            acked.TrySetResult();
        }
    }

    public void Forget(int id) => _pending.TryRemove(id, out _);

    public void Dispose()
    {
        _disposed = true;
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var acked))
            {
                acked.TrySetException(new ObjectDisposedException(nameof(GroupCommandAcks), "The instance is shutting down."));
            }
        }
    }
}
