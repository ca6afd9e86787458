using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// With Redis, a kept stream can be resumed on any instance: the client that lost its connection to one
/// gateway resumes on another, through a Redis restart, and after a real SIGTERM drained its instance.
/// </summary>
public sealed class RedisStreamsTests : RedisTestBase
{
    [Fact]
    public async Task A_stream_started_on_one_instance_resumes_on_another_exactly_once()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var chatId = Guid.NewGuid().ToString();

        var lost = await HubClients.StartAsync(a.HubUrl);
        var (streamId, before) = await ReadSomeAsync(lost, ["tokens", new { question = "x", chatId, overrideConfig = new { count = 200, rate = 50 } }], tokens: 10);
        await lost.DisposeAsync();
        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, before[^1].Seq));

        Assert.Equal(streamId, resumedId);
        AssertWhole(before.Concat(after).ToList(), "x", 200);
        Assert.DoesNotContain(await Upstream.RequestsAsync(), r => (string?)r!["path"] == $"/api/v1/chatmessage/abort/tokens/{chatId}");
    }

    [Fact]
    public async Task Redis_restarting_empty_during_a_kept_stream_loses_nothing_of_it()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var lost = await HubClients.StartAsync(a.HubUrl);
        var (streamId, before) = await ReadSomeAsync(lost, ["tokens", new { question = "y", overrideConfig = new { count = 200, rate = 50 } }], tokens: 10);
        await lost.DisposeAsync();

        await Redis.RestartAsync();
        await using var resumed = await HubClients.StartAsync(b.HubUrl);

        // Until A has written the stream again, B cannot find it, or cannot reach Redis: it says so, and the client asks again.
        List<Predictions.Item>? after = null;
        var refusals = new List<string>();
        await SharedRedis.WaitUntilAsync(async () =>
        {
            try
            {
                (_, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, before[^1].Seq));
                return true;
            }
            catch (HubException e)
            {
                refusals.Add(e.Message);
                return false;
            }
        }, () => $"a resume on the other instance to succeed (refused: {string.Join(" | ", refusals.Distinct())})");

        Assert.All(refusals, r => Assert.True(r.Contains("No stream", StringComparison.Ordinal) || r.Contains("cannot be read right now", StringComparison.Ordinal), r));
        AssertWhole(before.Concat(after!).ToList(), "y", 200);
    }

    [Fact]
    public async Task A_resume_after_the_last_item_it_got_ends_at_once_on_another_instance_as_on_its_own()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        await using var asking = await HubClients.StartAsync(a.HubUrl);
        var (streamId, items) = await Predictions.ReadWithHeaderAsync(asking.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "l", overrideConfig = new { count = 5, rate = 0 } }));
        var lastSeq = items[^1].Seq; // the answer's own seq: what a client that got everything would resume after
        await using var other = await HubClients.StartAsync(b.HubUrl);
        await SharedRedis.WaitUntilAsync(async () =>
        {
            try
            {
                var (_, all) = await Predictions.ReadWithHeaderAsync(other.StreamAsync<Predictions.Item>("Resume", streamId, 0L));
                return all.Count == items.Count;
            }
            catch (HubException)
            {
                return false; // not in Redis yet
            }
        }, () => "the ended stream to be readable on the other instance");

        // The writer still lives: nothing will come after the answer, so the read must end rather than wait for more.
        var (onA, afterOnA) = await Predictions.ReadWithHeaderAsync(asking.StreamAsync<Predictions.Item>("Resume", streamId, lastSeq)).WaitAsync(Timeout);
        var (onB, afterOnB) = await Predictions.ReadWithHeaderAsync(other.StreamAsync<Predictions.Item>("Resume", streamId, lastSeq)).WaitAsync(Timeout);

        Assert.Equal(streamId, onA);
        Assert.Equal(streamId, onB);
        Assert.Empty(afterOnA);
        Assert.Empty(afterOnB);
    }

    [Fact]
    public async Task An_ended_stream_is_written_again_after_Redis_restarts_empty_within_its_retention()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        await using var asking = await HubClients.StartAsync(a.HubUrl);
        var (streamId, items) = await Predictions.ReadWithHeaderAsync(asking.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "z", overrideConfig = new { count = 20, rate = 0 } }));

        await Redis.RestartAsync();
        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        List<Predictions.Item>? replayed = null;
        await SharedRedis.WaitUntilAsync(async () =>
        {
            try
            {
                (_, replayed) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, 0L));
                return true;
            }
            catch (HubException)
            {
                return false; // not written again yet
            }
        }, () => "the ended stream to be resumable on the other instance again");

        AssertWhole(replayed!, "z", 20);
        Assert.Equal(items.Select(i => $"{i.Seq} {i.Event} {i.Data.GetRawText()}"), replayed!.Select(i => $"{i.Seq} {i.Event} {i.Data.GetRawText()}"));
    }

    [Fact]
    public async Task On_SIGTERM_an_instance_lets_a_kept_prediction_finish_exits_and_another_instance_replays_the_rest_exactly_once()
    {
        await using var a = await StartGatewayProcessAsync(new Dictionary<string, string?> { ["Gateway:Drain:Timeout"] = "00:00:30" });
        await using var b = await StartGatewayAsync();
        var lost = await HubClients.StartAsync(a.HubUrl);
        var (streamId, before) = await ReadSomeAsync(lost, ["tokens", new { question = "d", overrideConfig = new { count = 200, rate = 50 } }], tokens: 5);
        await lost.DisposeAsync();

        await a.TerminateAsync();

        // The drain found the prediction nobody reads any more still running, waited for it, and then the process ended by itself.
        await a.WaitForOutputAsync("Draining: 1 prediction(s) running", Timeout);
        Assert.Equal(0, await a.WaitForExitAsync(Timeout));
        Assert.DoesNotContain("Drain timeout reached", a.Output);

        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, before[^1].Seq));

        Assert.Equal(streamId, resumedId);
        AssertWhole(before.Concat(after).ToList(), "d", 200);
    }

    [Fact]
    public async Task On_SIGTERM_a_kept_prediction_that_outlasts_the_drain_timeout_ends_with_why_for_a_resume_on_another_instance()
    {
        await using var a = await StartGatewayProcessAsync(new Dictionary<string, string?> { ["Gateway:Drain:Timeout"] = "00:00:01" });
        await using var b = await StartGatewayAsync();
        var lost = await HubClients.StartAsync(a.HubUrl);
        var (streamId, before) = await ReadSomeAsync(lost, ["tokens", new { question = "long", overrideConfig = new { count = 100_000, rate = 50 } }], tokens: 2);
        await lost.DisposeAsync();

        await a.TerminateAsync();
        Assert.Equal(0, await a.WaitForExitAsync(Timeout));

        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        var cutOff = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, before[^1].Seq)));

        Assert.Contains("shut down before its answer was complete (Gateway:Drain:Timeout)", cutOff.Message);
    }

    [Fact]
    public async Task In_a_rollout_a_client_still_reading_its_Predict_on_the_instance_that_gets_SIGTERM_is_told_to_reconnect_and_has_its_whole_answer_exactly_once()
    {
        await using var a = await StartGatewayProcessAsync(new Dictionary<string, string?> { ["Gateway:Drain:Timeout"] = "00:00:30" });
        await using var b = await StartGatewayAsync();
        await using var reading = HubClients.Create(a.HubUrl);
        var draining = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        reading.On<JsonElement>(GatewayEvents.Draining, notice => draining.TrySetResult(notice));
        var closed = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        reading.Closed += error =>
        {
            closed.TrySetResult(error);
            return Task.CompletedTask;
        };
        await reading.StartAsync();
        var predict = reading.StreamAsyncCore<Predictions.Item>("Predict", ["tokens", new { question = "roll", overrideConfig = new { count = 200, rate = 50 } }]).GetAsyncEnumerator();
        var (streamId, items) = await ReadTokensAsync(predict, tokens: 5);

        await a.TerminateAsync();
        await a.WaitForOutputAsync("Draining: 1 prediction(s) running", Timeout);

        // The connection stays open while the drain waits for its prediction: the client reads on, up to the
        // answer, unless the close that follows the drain overtakes the last items (then Resume brings them).
        try
        {
            while (await predict.MoveNextAsync().AsTask().WaitAsync(Timeout))
            {
                items.Add(predict.Current);
            }
        }
        catch (Exception e) when (e is not TimeoutException)
        {
            Assert.DoesNotContain("Gateway:Drain:Timeout", e.Message); // closed, not cut off
        }

        var notice = await draining.Task.WaitAsync(Timeout);
        Assert.Contains("reconnect", notice.GetProperty("reason").GetString());
        Assert.Null(await closed.Task.WaitAsync(Timeout)); // a clean close, for the client to reconnect elsewhere
        Assert.Equal(0, await a.WaitForExitAsync(Timeout));
        Assert.DoesNotContain("Drain timeout reached", a.Output);

        // As a load balancer sends it once A is gone: to B. A client that has the answer needs nothing more, and B
        // replays the same stream; one whose connection closed before the last items resumes after the last it got.
        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        var answered = items[^1].Event == "result";
        var (resumedId, fromB) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, answered ? 0L : items[^1].Seq));

        Assert.Equal(streamId, resumedId);
        AssertWhole(answered ? items : items.Concat(fromB).ToList(), "roll", 200);
        if (answered)
        {
            Assert.Equal(items.Select(i => $"{i.Seq} {i.Event} {i.Data.GetRawText()}"), fromB.Select(i => $"{i.Seq} {i.Event} {i.Data.GetRawText()}"));
        }
    }

    [Fact]
    public async Task On_SIGTERM_with_Redis_stalled_the_drain_waits_for_its_streams_to_be_written_there_and_says_when_they_were_not()
    {
        await using var a = await StartGatewayProcessAsync(new Dictionary<string, string?> { ["Gateway:Drain:Timeout"] = "00:00:01" });
        await using var b = await StartGatewayAsync();
        await using var admin = await ConnectionMultiplexer.ConnectAsync(Redis.Configuration + ",allowAdmin=true");
        var lost = await HubClients.StartAsync(a.HubUrl);
        await ReadSomeAsync(lost, ["tokens", new { question = "stall", overrideConfig = new { count = 100_000, rate = 50 } }], tokens: 2);
        await lost.DisposeAsync();

        // Redis takes writes in and carries none of them out, as one stuck in a failover does:
        // the stream's writes, one round at a time, stop with the prediction still adding to it.
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "60000", "WRITE");
        try
        {
            await a.TerminateAsync();

            // Without the wait the instance would exit at once, its stream's end never written, and say nothing.
            await a.WaitForOutputAsync("Streams were not all written to Redis within 00:00:02", Timeout);
        }
        finally
        {
            await admin.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
        }

        Assert.Equal(0, await a.WaitForExitAsync(Timeout));
    }

    [Fact]
    public async Task A_kept_prediction_whose_instance_was_killed_is_reported_lost_on_another_instance()
    {
        await using var crashed = await StartGatewayProcessAsync();
        await using var b = await StartGatewayAsync();
        var orphan = await HubClients.StartAsync(crashed.HubUrl);
        var (orphanId, _) = await ReadSomeAsync(orphan, ["tokens", new { question = "orphan", overrideConfig = new { count = 100_000, rate = 50 } }], tokens: 2);
        await orphan.DisposeAsync();
        await using var resumed = await HubClients.StartAsync(b.HubUrl);

        // Written behind, the stream reaches Redis a moment after its first events: a crash before that leaves no stream at all.
        await SharedRedis.WaitUntilAsync(async () =>
        {
            try
            {
                await using var reading = resumed.StreamAsync<Predictions.Item>("Resume", orphanId, 0L).GetAsyncEnumerator();
                return await reading.MoveNextAsync().AsTask().WaitAsync(Timeout) && await reading.MoveNextAsync().AsTask().WaitAsync(Timeout);
            }
            catch (HubException)
            {
                return false; // not in Redis yet
            }
        }, () => $"stream {orphanId} to be readable on the other instance");

        // As a crash or an OOM kill: no drain, its stream stays in Redis unfinished, and its instance key expires.
        await crashed.KillAsync();
        var writerLost = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", orphanId, 0L)));

        Assert.Contains($"The gateway instance running the prediction of stream {orphanId} stopped before its answer was complete", writerLost.Message);
    }

    private static void AssertWhole(List<Predictions.Item> items, string question, int count)
    {
        Assert.Equal(Enumerable.Range(1, items.Count).Select(i => (long)i), items.Select(i => i.Seq)); // no gap, no duplicate
        var tokens = items.Where(i => i.Event == "token").Select(i => i.Data.GetString()).ToList();
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"{question}:{i}"), tokens);
        Assert.Equal("result", items[^1].Event);
        Assert.Equal(string.Concat(tokens), items[^1].Data.GetProperty("text").GetString());
    }

    /// <summary>Starts a Predict and reads it until <paramref name="tokens"/> tokens are in, leaving the stream open (disposing it would cancel it).</summary>
    private static Task<(string StreamId, List<Predictions.Item> Items)> ReadSomeAsync(HubConnection connection, object?[] args, int tokens) =>
        ReadTokensAsync(connection.StreamAsyncCore<Predictions.Item>("Predict", args).GetAsyncEnumerator(), tokens);

    /// <summary>Reads a Predict's header and its items until <paramref name="tokens"/> tokens are in.</summary>
    private static async Task<(string StreamId, List<Predictions.Item> Items)> ReadTokensAsync(IAsyncEnumerator<Predictions.Item> stream, int tokens)
    {
        var items = new List<Predictions.Item>();
        string? streamId = null;
        while (items.Count(i => i.Event == "token") < tokens)
        {
            Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(Timeout), "The stream ended early.");
            if (streamId is null)
            {
                streamId = stream.Current.Data.GetProperty("streamId").GetString();
                continue;
            }

            items.Add(stream.Current);
        }

        return (streamId!, items);
    }
}
