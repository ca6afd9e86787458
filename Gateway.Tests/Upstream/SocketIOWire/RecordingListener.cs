using TromAi.Gateway.Upstream;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Tests.Upstream.SocketIOWire;

/// <summary>What a <see cref="SocketIOConnection"/> hands its listener, recorded, with waits that wake on each new event.</summary>
internal sealed class RecordingListener : ISocketIOListener
{
    private readonly Lock _gate = new();
    private readonly List<(string Name, object?[] Args)> _events = [];
    private readonly TaskCompletionSource<string> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _closedCalls;

    public Task<string> Closed => _closed.Task;

    public int ClosedCalls => Volatile.Read(ref _closedCalls);

    /// <summary>Set to fail the connection's loop from inside the listener.</summary>
    public Func<string, bool>? ThrowOn { get; init; }

    public void OnEvent(string name, object?[] args)
    {
        if (ThrowOn?.Invoke(name) == true)
        {
            throw new InvalidOperationException($"listener refused {name}");
        }

        TaskCompletionSource changed;
        lock (_gate)
        {
            _events.Add((name, args));
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    public void OnClosed(string reason)
    {
        Interlocked.Increment(ref _closedCalls);
        _closed.TrySetResult(reason);
    }

    public List<(string Name, object?[] Args)> Snapshot()
    {
        lock (_gate)
        {
            return [.. _events];
        }
    }

    public async Task WaitForAsync(Func<List<(string Name, object?[] Args)>, bool> condition, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (condition(_events))
                {
                    return;
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Condition not met within {timeout}; {Snapshot().Count} events received.");
            }
        }
    }

    /// <summary>An event's arguments as one JSON array, as they arrived.</summary>
    public static string ArgsJson(object?[] args) => "[" + string.Join(",", args.Select(a => ((RawJson)a!).ToString())) + "]";
}
