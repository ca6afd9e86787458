using System.Text.Json.Nodes;

namespace TromAi.Gateway.Bench.Streams;

/// <summary>What a set of streams delivered on one path: integrity counts, latencies, timing.</summary>
internal sealed class StreamOutcome
{
    public int Streams { get; init; }

    public long TokensExpected { get; init; }

    public long TokensReceived { get; init; }

    /// <summary>Every event received: start, tokens and end.</summary>
    public long Events { get; init; }

    public long Lost { get; init; }

    public long Duplicated { get; init; }

    public long Reordered { get; init; }

    /// <summary>Tokens that belonged to another stream or could not be read.</summary>
    public long Foreign { get; init; }

    /// <summary>Streams whose <c>end</c> never arrived.</summary>
    public int Unfinished { get; init; }

    public int FailedPosts { get; init; }

    public string? FirstPostFailure { get; init; }

    public LatencySummary Latency { get; init; }

    /// <summary>From the first prediction request to the last <c>end</c> received.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>Nothing lost, duplicated, reordered or misrouted, every stream finished, every request answered.</summary>
    public bool Intact => Lost == 0 && Duplicated == 0 && Reordered == 0 && Foreign == 0 && Unfinished == 0 && FailedPosts == 0;

    /// <summary>"0 lost", or every count that is not zero.</summary>
    public string Integrity => Intact
        ? "0 lost"
        : FormattableString.Invariant($"{Lost} lost, {Duplicated} duplicated, {Reordered} reordered, {Foreign} misrouted, {Unfinished} unfinished, {FailedPosts} failed requests");

    public JsonObject ToJson() => new()
    {
        ["streams"] = Streams,
        ["tokensExpected"] = TokensExpected,
        ["tokensReceived"] = TokensReceived,
        ["events"] = Events,
        ["lost"] = Lost,
        ["duplicated"] = Duplicated,
        ["reordered"] = Reordered,
        ["foreign"] = Foreign,
        ["unfinished"] = Unfinished,
        ["failedPosts"] = FailedPosts,
        ["firstPostFailure"] = FirstPostFailure,
        ["elapsedS"] = Math.Round(Elapsed.TotalSeconds, 3),
        ["latencyMs"] = Latency.ToJson(),
    };
}
