using System.Collections.Concurrent;

namespace TromAi.Gateway.Bridge;

/// <summary>The predictions this instance keeps running (<see cref="KeptPrediction"/>), for a drain to end those that outlast it.</summary>
internal sealed class PredictionRuns
{
    private readonly ConcurrentDictionary<KeptPrediction, byte> _running = new();

    /// <summary>Predictions running now, with or without a client reading them.</summary>
    public int Count => _running.Count;

    public void Add(KeptPrediction prediction) => _running[prediction] = 0;

    public void Remove(KeptPrediction prediction) => _running.TryRemove(prediction, out _);

    /// <summary>
    /// Ends every running prediction's stream with <paramref name="reason"/> and stops it upstream;
    /// completes once all have let go of their sessions, or after <paramref name="timeout"/>.
    /// </summary>
    public async Task CancelAllAsync(string reason, TimeSpan timeout)
    {
        var running = _running.Keys.ToList();
        foreach (var prediction in running)
        {
            prediction.Cancel(reason);
        }

        try
        {
            await Task.WhenAll(running.Select(prediction => prediction.Finished)).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            // Their sessions close with the process.
        }
    }
}
