using TromAi.Gateway.Bridge;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A REST prediction relayed from an SSE-era TROM.AI (<see cref="SsePredictionRelay"/>), as a kept
/// prediction: cancelling it (the detached timeout, a drain) stops reading its answer, which stops
/// the flow, and asks TROM.AI to abort it.
/// </summary>
internal sealed class SseRestPrediction(IStreamWriter stream, PredictionStreams calls, UpstreamCaller caller, PredictionRuns runs, TimeSpan detachedTimeout, TimeProvider time)
    : KeptPrediction(stream, runs, detachedTimeout, time)
{
    private readonly CancellationTokenSource _reading = new();
    private Uri? _replica;

    /// <summary>Cancelled when the prediction is: what reads its answer stops.</summary>
    public CancellationToken Reading => _reading.Token;

    /// <summary>The replica that took the prediction, which an abort goes to.</summary>
    public void AskedAt(Uri replica)
    {
        Volatile.Write(ref _replica, replica);
        if (IsCancelled)
        {
            _ = AbortAsync(replica);
        }
    }

    /// <summary>Its answer has been read (or given up on); the stream has its end.</summary>
    public void Done() => Finish();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _reading.Dispose();
        }

        base.Dispose(disposing);
    }

    protected override void OnCancelled()
    {
        try
        {
            _reading.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return; // over meanwhile
        }

        if (Volatile.Read(ref _replica) is { } replica)
        {
            _ = AbortAsync(replica);
        }
    }

    private Task AbortAsync(Uri replica) =>
        Stream.Start.ChatId is { } chatId ? calls.AbortAsync(caller, replica, Stream.Start.ChatflowId, chatId) : Task.CompletedTask;
}
