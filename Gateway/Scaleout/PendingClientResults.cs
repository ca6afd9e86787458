using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// Client results that are pending on this instance: invocations a hub on this instance is awaiting (whichever
/// instance holds the connection), and invocations another instance sent to one of this instance's connections,
/// whose completion goes back to that instance. It is also the binder that reads a completion forwarded by another
/// instance, with the result type the awaiting caller expects.
/// </summary>
internal sealed class PendingClientResults : IInvocationBinder
{
    private readonly ConcurrentDictionary<string, PendingResult> _pending = new(StringComparer.Ordinal);

    /// <summary>Registers an invocation this instance awaits; the task ends with the client's result, its error, or the token.</summary>
    public Task<T> Add<T>(string connectionId, string invocationId, CancellationToken cancellationToken)
    {
        var pending = new AwaitedResult<T>(this, connectionId, invocationId);
        if (!_pending.TryAdd(invocationId, pending))
        {
            throw new InvalidOperationException($"Invocation id '{invocationId}' is already waiting for a client result.");
        }

        // After the add, so a token that is already cancelled finds the entry it has to remove.
        pending.CancelWith(cancellationToken);
        return pending.Task;
    }

    /// <summary>
    /// Registers an invocation another instance sent to local connection <paramref name="connectionId"/>. The client's
    /// completion is read as a <see cref="RawResult"/> and handed to <paramref name="forward"/> unparsed.
    /// </summary>
    public bool AddForwarded(string invocationId, string connectionId, Func<CompletionMessage, Task> forward) =>
        _pending.TryAdd(invocationId, new ForwardedResult(connectionId, forward));

    public bool TryGetType(string invocationId, [NotNullWhen(true)] out Type? type)
    {
        if (_pending.TryGetValue(invocationId, out var pending))
        {
            type = pending.ResultType;
            return true;
        }

        type = null;
        return false;
    }

    /// <summary>Completes an invocation with what the client of <paramref name="connectionId"/> answered.</summary>
    public Task CompleteAsync(string connectionId, CompletionMessage completion)
    {
        if (completion.InvocationId is not { } id || !_pending.TryGetValue(id, out var pending))
        {
            // Already completed, cancelled, or failed by a disconnect: a late answer is ignored.
            return Task.CompletedTask;
        }

        if (pending.ConnectionId != connectionId)
        {
            throw new InvalidOperationException($"Connection '{connectionId}' answered invocation '{id}', which was sent to another connection.");
        }

        return _pending.TryRemove(new KeyValuePair<string, PendingResult>(id, pending)) ? pending.CompleteAsync(completion) : Task.CompletedTask;
    }

    /// <summary>Completes an invocation this instance awaits with a completion another instance forwarded.</summary>
    public void CompleteForwarded(CompletionMessage completion)
    {
        if (completion.InvocationId is { } id && _pending.TryRemove(id, out var pending))
        {
            _ = pending.CompleteAsync(completion);
        }
    }

    public void Remove(string invocationId) => _pending.TryRemove(invocationId, out _);

    /// <summary>Ends every invocation waiting on <paramref name="connectionId"/> with <paramref name="error"/>.</summary>
    public Task FailConnectionAsync(string connectionId, string error)
    {
        List<Task>? forwarding = null;
        foreach (var (id, pending) in _pending)
        {
            if (pending.ConnectionId == connectionId && _pending.TryRemove(new KeyValuePair<string, PendingResult>(id, pending)))
            {
                var completed = pending.CompleteAsync(CompletionMessage.WithError(id, error));
                if (!completed.IsCompletedSuccessfully)
                {
                    (forwarding ??= []).Add(completed);
                }
            }
        }

        return forwarding is null ? Task.CompletedTask : Task.WhenAll(forwarding);
    }

    Type IInvocationBinder.GetReturnType(string invocationId) =>
        TryGetType(invocationId, out var type)
            ? type
            : throw new InvalidOperationException($"No client result is pending for invocation '{invocationId}'.");

    IReadOnlyList<Type> IInvocationBinder.GetParameterTypes(string methodName) =>
        throw new NotSupportedException("This binder only reads completion messages.");

    Type IInvocationBinder.GetStreamItemType(string streamId) =>
        throw new NotSupportedException("This binder only reads completion messages.");

    private abstract class PendingResult(string connectionId, Type resultType)
    {
        public string ConnectionId { get; } = connectionId;

        public Type ResultType { get; } = resultType;

        public abstract Task CompleteAsync(CompletionMessage completion);
    }

    private sealed class AwaitedResult<T>(PendingClientResults owner, string connectionId, string invocationId)
        : PendingResult(connectionId, typeof(T))
    {
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private CancellationTokenRegistration _cancellation;

        public Task<T> Task => _result.Task;

        public void CancelWith(CancellationToken cancellationToken)
        {
            if (cancellationToken.CanBeCanceled)
            {
                _cancellation = cancellationToken.UnsafeRegister(
                    static (state, token) =>
                    {
                        var self = (AwaitedResult<T>)state!;
                        if (self.Forget())
                        {
                            self._result.TrySetCanceled(token);
                        }
                    },
                    this);
            }
        }

        public override Task CompleteAsync(CompletionMessage completion)
        {
            _cancellation.Dispose();
            if (completion.Error is { } error)
            {
                _result.TrySetException(new HubException(error));
            }
            else if (completion.Result is T result)
            {
                _result.TrySetResult(result);
            }
            else if (completion.Result is null && default(T) is null)
            {
                _result.TrySetResult(default!);
            }
            else
            {
                _result.TrySetException(new HubException(
                    $"The client answered invocation '{invocationId}' with {completion.Result?.GetType().Name ?? "null"} where {typeof(T).Name} was expected."));
            }

            return System.Threading.Tasks.Task.CompletedTask;
        }

        private bool Forget() => owner._pending.TryRemove(new KeyValuePair<string, PendingResult>(invocationId, this));
    }

    private sealed class ForwardedResult(string connectionId, Func<CompletionMessage, Task> forward)
        : PendingResult(connectionId, typeof(RawResult))
    {
        public override Task CompleteAsync(CompletionMessage completion) => forward(completion);
    }
}
