using System.Globalization;

namespace TromAi.Gateway.Bench.Streams;

/// <summary>
/// One token stream as one session receives it: the upstream's <c>tokens</c> chatflow sends <c>start</c>,
/// tokens <c>{question}:{i}:{emitEpochMs}</c> for i in [0, count), then <c>end</c>. Counts what is lost,
/// duplicated, out of order or not ours, and keeps each token's end-to-end latency by its index.
/// Written only by the session's receive loop (both clients deliver one event at a time, in order);
/// read once <see cref="Ended"/> has completed, or after the run gave up waiting for it.
/// </summary>
internal sealed class StreamTally
{
    private readonly string _question;
    private readonly float[] _latencyMs; // by token index; NaN until that token arrives
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _highest = -1;

    public StreamTally(string question, int count)
    {
        _question = question;
        Count = count;
        _latencyMs = new float[count];
        Array.Fill(_latencyMs, float.NaN);
    }

    public int Count { get; }

    /// <summary>Distinct tokens received.</summary>
    public int Received { get; private set; }

    public int Duplicated { get; private set; }

    /// <summary>Tokens that arrived after a later one of the same stream.</summary>
    public int Reordered { get; private set; }

    /// <summary>Tokens of another stream, or unreadable.</summary>
    public int Foreign { get; private set; }

    public bool Started { get; private set; }

    public int Lost => Count - Received;

    /// <summary>Completes when <c>end</c> arrives.</summary>
    public Task Ended => _ended.Task;

    public double EndedAtEpochMs { get; private set; }

    public void OnStart() => Started = true;

    public void OnToken(string token, double receivedAtEpochMs)
    {
        if (!TryParse(token, out var question, out var index, out var emittedAtEpochMs)
            || !question.SequenceEqual(_question)
            || (uint)index >= (uint)Count)
        {
            Foreign++;
            return;
        }

        if (!float.IsNaN(_latencyMs[index]))
        {
            Duplicated++;
            return;
        }

        if (index < _highest)
        {
            Reordered++;
        }
        else
        {
            _highest = index;
        }

        _latencyMs[index] = (float)(receivedAtEpochMs - (emittedAtEpochMs - BenchClock.UpstreamOffsetMs));
        Received++;
    }

    public void OnEnd(double receivedAtEpochMs)
    {
        EndedAtEpochMs = receivedAtEpochMs;
        _ended.TrySetResult();
    }

    /// <summary>Appends the latencies of the tokens received.</summary>
    public void CopyLatencies(List<float> into)
    {
        for (var i = 0; i < _latencyMs.Length; i++)
        {
            if (!float.IsNaN(_latencyMs[i]))
            {
                into.Add(_latencyMs[i]);
            }
        }
    }

    /// <summary>Splits <c>{question}:{index}:{epochMs}</c> without allocating; the question may itself contain colons.</summary>
    internal static bool TryParse(ReadOnlySpan<char> token, out ReadOnlySpan<char> question, out int index, out double epochMs)
    {
        question = default;
        index = -1;
        epochMs = 0;
        var stampAt = token.LastIndexOf(':');
        if (stampAt < 0)
        {
            return false;
        }

        var head = token[..stampAt];
        var indexAt = head.LastIndexOf(':');
        if (indexAt < 0)
        {
            return false;
        }

        question = head[..indexAt];
        return int.TryParse(head[(indexAt + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out index)
            && double.TryParse(token[(stampAt + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out epochMs);
    }
}
