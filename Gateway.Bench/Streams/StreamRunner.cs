using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Clients;

namespace TromAi.Gateway.Bench.Streams;

/// <summary>How each stream of a run is shaped; every stream of a run is the same.</summary>
/// <param name="Stagger">Stream starts are spread evenly over this, so streams do not tick in lockstep.</param>
/// <param name="DrainTimeout">How long, after every request has been answered, the events may still take to arrive.</param>
internal sealed record StreamPlan(int TokensPerStream, double TokensPerSecond, TimeSpan Stagger, TimeSpan DrainTimeout)
{
    /// <summary>The same streams, shortened to <paramref name="seconds"/> (at least one token).</summary>
    public StreamPlan Lasting(double seconds) => this with { TokensPerStream = Math.Max(1, (int)Math.Ceiling(TokensPerSecond * seconds)) };
}

/// <summary>One prediction request: which socket the upstream streams to, and the question that tags its tokens.</summary>
internal readonly record struct StreamPost(string SocketIOClientId, string Question);

/// <summary>A session and the question of the stream it should receive.</summary>
internal readonly record struct StreamExpectation(BenchSession Session, string Question);

/// <summary>
/// Runs token streams: POSTs the upstream's <c>tokens</c> chatflow (<c>stamp: true</c>) once per stream, on the
/// path's own REST endpoint (the upstream for direct sessions, the gateway, whose proxy rewrites the id, for
/// bridged ones), waits for every stream's <c>end</c>, and tallies what arrived.
/// </summary>
internal static class StreamRunner
{
    public const string Chatflow = "tokens";

    /// <summary>Each session gets its own stream, tagged with its index.</summary>
    public static Task<StreamOutcome> RunOnePerSessionAsync(HttpClient predictions, IReadOnlyList<BenchSession> sessions, StreamPlan plan, CancellationToken cancellationToken)
    {
        var posts = new StreamPost[sessions.Count];
        var expected = new StreamExpectation[sessions.Count];
        for (var i = 0; i < sessions.Count; i++)
        {
            var question = "s" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            posts[i] = new StreamPost(sessions[i].SocketIOClientId, question);
            expected[i] = new StreamExpectation(sessions[i], question);
        }

        return RunAsync(predictions, posts, expected, plan, cancellationToken);
    }

    public static async Task<StreamOutcome> RunAsync(
        HttpClient predictions,
        IReadOnlyList<StreamPost> posts,
        IReadOnlyList<StreamExpectation> expected,
        StreamPlan plan,
        CancellationToken cancellationToken)
    {
        var tallies = new StreamTally[expected.Count];
        var ended = new Task[expected.Count];
        for (var i = 0; i < expected.Count; i++)
        {
            tallies[i] = new StreamTally(expected[i].Question, plan.TokensPerStream);
            ended[i] = tallies[i].Ended;
            expected[i].Session.Expect(tallies[i]);
        }

        var begunAt = BenchClock.NowEpochMs();
        var requests = new Task<string?>[posts.Count];
        for (var i = 0; i < posts.Count; i++)
        {
            var delay = posts.Count > 1 ? plan.Stagger * i / posts.Count : TimeSpan.Zero;
            requests[i] = PostAsync(predictions, posts[i], plan, delay, cancellationToken);
        }

        var failures = await Task.WhenAll(requests);

        // Each POST answers after its stream's `end` was emitted: what has not arrived by now is in flight or lost.
        try
        {
            await Task.WhenAll(ended).WaitAsync(plan.DrainTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Counted below as unfinished streams and lost tokens.
        }

        foreach (var expectation in expected)
        {
            expectation.Session.Expect(null);
        }

        return Tally(tallies, failures, begunAt);
    }

    private static async Task<string?> PostAsync(HttpClient predictions, StreamPost post, StreamPlan plan, TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, cancellationToken);
        }

        var body = new JsonObject
        {
            ["question"] = post.Question,
            ["socketIOClientId"] = post.SocketIOClientId,
            ["overrideConfig"] = new JsonObject
            {
                ["count"] = plan.TokensPerStream,
                ["rate"] = plan.TokensPerSecond,
                ["stamp"] = true,
            },
        };

        try
        {
            using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            using var response = await predictions.PostAsync($"api/v1/prediction/{Chatflow}", content, cancellationToken);
            var answer = await response.Content.ReadAsStringAsync(cancellationToken); // read to the end so the connection is reused
            return response.StatusCode == HttpStatusCode.OK ? null : $"HTTP {(int)response.StatusCode}: {answer[..Math.Min(answer.Length, 200)]}";
        }
        catch (HttpRequestException e)
        {
            return e.InnerException is { } cause ? $"{e.Message} ({cause.Message})" : e.Message;
        }
    }

    private static StreamOutcome Tally(StreamTally[] tallies, string?[] failures, double begunAtEpochMs)
    {
        long received = 0, lost = 0, duplicated = 0, reordered = 0, foreign = 0, events = 0;
        var unfinished = 0;
        var lastEnd = begunAtEpochMs;
        var latencies = new List<float>();
        foreach (var tally in tallies)
        {
            received += tally.Received;
            lost += tally.Lost;
            duplicated += tally.Duplicated;
            reordered += tally.Reordered;
            foreign += tally.Foreign;
            events += tally.Received + tally.Duplicated + (tally.Started ? 1 : 0) + (tally.Ended.IsCompleted ? 1 : 0);
            if (tally.Ended.IsCompleted)
            {
                lastEnd = Math.Max(lastEnd, tally.EndedAtEpochMs);
            }
            else
            {
                unfinished++;
            }

            tally.CopyLatencies(latencies);
        }

        var failedPosts = 0;
        string? firstFailure = null;
        foreach (var failure in failures)
        {
            if (failure is not null)
            {
                failedPosts++;
                firstFailure ??= failure;
            }
        }

        return new StreamOutcome
        {
            Streams = tallies.Length,
            TokensExpected = (long)tallies.Length * (tallies.Length > 0 ? tallies[0].Count : 0),
            TokensReceived = received,
            Events = events,
            Lost = lost,
            Duplicated = duplicated,
            Reordered = reordered,
            Foreign = foreign,
            Unfinished = unfinished,
            FailedPosts = failedPosts,
            FirstPostFailure = firstFailure,
            Latency = LatencySummary.Of(latencies),
            Elapsed = TimeSpan.FromMilliseconds(lastEnd - begunAtEpochMs),
        };
    }

    /// <summary>A client for prediction requests: one connection per concurrent stream, no overall timeout (a run's own cancellation bounds it).</summary>
    public static HttpClient CreateClient(Uri baseUrl) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = int.MaxValue,
        ConnectTimeout = TimeSpan.FromSeconds(30),
        // Below Node's 5 s keep-alive: an idle connection is dropped here before the upstream closes it, so a
        // request never races that close, and thousands of dead pooled sockets do not eat the open-file limit.
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(2),
    })
    {
        BaseAddress = baseUrl,
        Timeout = Timeout.InfiniteTimeSpan,
    };
}
