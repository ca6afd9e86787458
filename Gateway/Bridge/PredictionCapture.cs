using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// What one hub <c>Predict</c> reads: the upstream events its connection's relay captured for it, in
/// wire order, then an end marker that the relay's queue carried behind them. The stream's reader
/// reads this one channel and nothing else, so it never stops reading while it waits for the end.
/// </summary>
internal sealed class PredictionCapture
{
    // Small on purpose: a backlog waits in the relay's queue, which Relay:MaxBacklog bounds; this only
    // lets the relay hand over a few events while the stream's reader is busy sending the last one.
    private const int Capacity = 64;

    // Told apart by reference: no upstream event can carry this very string.
    private static readonly string EndMarker = new(['\0', 'e', 'n', 'd']);

    private readonly Channel<CapturedEvent> _items = Channel.CreateBounded<CapturedEvent>(
        new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly TaskCompletionSource _abortSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True once the reader has reached the end marker: every event of the prediction went through.</summary>
    public bool Ended { get; private set; }

    /// <summary>Completes when TROM.AI's <c>abort</c> event has been captured: the flow stopped emitting.</summary>
    public Task AbortSeen => _abortSeen.Task;

    /// <summary>
    /// The captured events up to the end marker. Ends without <see cref="Ended"/> when the relay
    /// stopped first (the connection closed).
    /// </summary>
    public async IAsyncEnumerable<CapturedEvent> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = _items.Reader;
        while (await reader.WaitToReadAsync(cancellationToken))
        {
            while (reader.TryRead(out var item))
            {
                if (ReferenceEquals(item.Name, EndMarker))
                {
                    Ended = true;
                    yield break;
                }

                yield return item;
            }
        }
    }

    /// <summary>The relay's side: waits while the reader lags. False once the capture was abandoned.</summary>
    internal async ValueTask<bool> WriteAsync(CapturedEvent item, CancellationToken cancellationToken)
    {
        if (item.Name == "abort")
        {
            _abortSeen.TrySetResult();
        }

        try
        {
            await _items.Writer.WriteAsync(item, cancellationToken);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
    }

    /// <summary>The relay reached the end marker: everything of the prediction has been written before it.</summary>
    internal async ValueTask EndAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _items.Writer.WriteAsync(new CapturedEvent(EndMarker, []), cancellationToken);
        }
        catch (ChannelClosedException)
        {
        }

        _items.Writer.TryComplete();
    }

    /// <summary>The relay stopped: no end marker will come, and the reader must not wait for one.</summary>
    internal void Abandon() => _items.Writer.TryComplete();
}
