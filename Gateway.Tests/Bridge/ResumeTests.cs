using System.Net;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// A reload, a lost network or a closed lid does not lose the answer: every <c>Predict</c> has a stream id
/// and numbered items, a client that goes away without cancelling leaves its prediction running, and
/// <c>Resume(streamId, afterSeq)</c> gives the rest, exactly once and in order (one instance, in memory).
/// </summary>
public sealed class ResumeTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Every_Predict_item_is_numbered_after_a_header_naming_the_stream_and_an_ended_stream_replays_whole()
    {
        await using var asking = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        await using var other = await HubClients.StartAsync(bridge.Gateway.HubUrl);

        var (streamId, items) = await Predictions.ReadWithHeaderAsync(asking.StreamAsync<Predictions.Item>("Predict", "all-events", new { question = "Hi" }));
        var (replayedId, replayed) = await Predictions.ReadWithHeaderAsync(other.StreamAsync<Predictions.Item>("Resume", streamId, 0L));

        Assert.StartsWith("st-", streamId);
        Assert.Equal(Enumerable.Range(1, items.Count).Select(i => (long)i), items.Select(i => i.Seq));
        Assert.Equal("result", items[^1].Event);
        Assert.Equal(streamId, replayedId);
        Assert.Equal(Render(items), Render(replayed));
    }

    [Fact]
    public async Task A_client_that_loses_its_connection_mid_answer_resumes_on_a_new_one_and_gets_the_rest_exactly_once()
    {
        var chatId = Guid.NewGuid().ToString();
        var lost = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (streamId, before) = await ReadSomeAsync(lost, "Predict", ["tokens", new { question = "q", chatId, overrideConfig = new { count = 200, rate = 50 } }], tokens: 10);

        await lost.DisposeAsync(); // the reload: no cancel, the connection just ends
        await using var resumed = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, before[^1].Seq));

        Assert.Equal(streamId, resumedId);
        var all = before.Concat(after).ToList();
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => (long)i), all.Select(i => i.Seq)); // no gap, no duplicate
        var tokens = all.Where(i => i.Event == "token").Select(i => i.Data.GetString()).ToList();
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"q:{i}"), tokens);
        Assert.Equal("result", all[^1].Event);
        Assert.Equal(string.Concat(tokens), all[^1].Data.GetProperty("text").GetString());
        Assert.DoesNotContain(await bridge.Upstream.RequestsAsync(), r => (string?)r!["path"] == $"/api/v1/chatmessage/abort/tokens/{chatId}");
    }

    [Fact]
    public async Task A_resume_that_is_itself_cut_off_can_be_resumed_again()
    {
        var lost = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (streamId, first) = await ReadSomeAsync(lost, "Predict", ["tokens", new { question = "r", overrideConfig = new { count = 200, rate = 50 } }], tokens: 5);
        await lost.DisposeAsync();
        var lostAgain = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (_, second) = await ReadSomeAsync(lostAgain, "Resume", [streamId, first[^1].Seq], tokens: 5);
        await lostAgain.DisposeAsync();

        await using var last = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (_, third) = await Predictions.ReadWithHeaderAsync(last.StreamAsync<Predictions.Item>("Resume", streamId, second[^1].Seq));

        var tokens = first.Concat(second).Concat(third).Where(i => i.Event == "token").Select(i => i.Data.GetString());
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"r:{i}"), tokens);
        Assert.Equal("result", third[^1].Event);
    }

    [Fact]
    public async Task Cancelling_still_aborts_upstream_and_a_resume_learns_that_it_was_cancelled()
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var chatId = Guid.NewGuid().ToString();
        using var cancel = new CancellationTokenSource();
        string? streamId = null;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                new { question = "c", chatId, overrideConfig = new { count = 100_000, rate = 100 } }, cancel.Token))
            {
                streamId ??= item.Data.GetProperty("streamId").GetString();
                if (item.Event == "token")
                {
                    await cancel.CancelAsync();
                }
            }
        }).WaitAsync(Timeout);
        await bridge.Upstream.WaitForRequestAsync($"/api/v1/chatmessage/abort/tokens/{chatId}", Timeout);

        var failure = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", streamId!, 0L)));
        Assert.Contains("cancelled by its client", failure.Message);
    }

    [Fact]
    public async Task A_REST_prediction_for_a_hub_connection_announces_its_stream_and_a_client_that_drops_resumes_the_rest()
    {
        var events = new EventRecorder();
        var lost = HubClients.Create(bridge.Gateway.HubUrl);
        events.Listen(lost, Predictions.StreamHeader, "gateway:stream-end", "start", "token", "end");
        await lost.StartAsync();
        var id = await lost.InvokeAsync<string>("GetSocketIOClientId");

        var rest = Predictions.PostAsync(bridge.Gateway.Http, "tokens", new { question = "w", socketIOClientId = id, overrideConfig = new { count = 200, rate = 50 } });
        await events.WaitForAsync(e => e.Count(x => x.Name == "token") >= 10, Timeout);
        await lost.DisposeAsync();
        var seen = events.Snapshot();
        var streamId = seen[0].Args[0].GetProperty("streamId").GetString()!;
        await using var resumed = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, (long)(seen.Count - 1)));
        var (status, answer) = await rest.WaitAsync(Timeout);

        // The upstream's events arrived unchanged, numbered by their place after the gateway:stream notice.
        Assert.Equal(Predictions.StreamHeader, seen[0].Name);
        Assert.Equal(streamId, resumedId);
        Assert.Equal(Enumerable.Range(seen.Count, after.Count).Select(i => (long)i), after.Select(i => i.Seq));
        var tokens = seen.Where(e => e.Name == "token").Select(e => e.Args[0].GetString()).Concat(after.Where(i => i.Event == "token").Select(i => i.Data.GetString()));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"w:{i}"), tokens);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("result", after[^1].Event);
        Assert.Equal(answer.GetProperty("text").GetString(), after[^1].Data.GetProperty("text").GetString());
    }

    [Fact]
    public async Task A_REST_answer_larger_than_MaxBytesPerStream_reaches_its_caller_whole_and_its_stream_says_it_was_not_kept()
    {
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Streams:MaxBytesPerStream"] = "4096" });
        var events = new EventRecorder();
        await using var client = HubClients.Create(gateway.HubUrl);
        events.Listen(client, Predictions.StreamHeader);
        await client.StartAsync();
        var id = await client.InvokeAsync<string>("GetSocketIOClientId");

        // About 8 KB of text: the answer passes the bound while being copied for the stream.
        var (status, answer) = await Predictions.PostAsync(gateway.Http, "tokens", new { question = "large", socketIOClientId = id, overrideConfig = new { count = 1000, rate = 0 } }).WaitAsync(Timeout);
        await events.WaitForAsync(e => e.Count > 0, Timeout);
        var streamId = events.Snapshot()[0].Args[0].GetProperty("streamId").GetString()!;
        var kept = gateway.Services.GetRequiredService<MemoryStreamStore>();
        await WaitUntilAsync(() => kept.TryGet(streamId, out var s) && s.IsEnded, "the stream to end");
        Assert.True(kept.TryGet(streamId, out var ended));
        var failure = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(client.StreamAsync<Predictions.Item>("Resume", streamId, ended.LastSeq)));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(string.Concat(Enumerable.Range(0, 1000).Select(i => $"large:{i}")), answer.GetProperty("text").GetString());
        Assert.Contains("The answer was larger than 4096 bytes (Gateway:Streams:MaxBytesPerStream), so it was not kept; its REST caller got it.", failure.Message);
    }

    [Theory]
    [InlineData("st-AAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("not-a-stream-id")]
    public async Task Resuming_an_unknown_id_fails_with_a_precise_error_and_the_connection_goes_on(string streamId)
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);

        var failure = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", streamId, 0L)));

        Assert.Contains($"No stream {streamId} is kept: the id is unknown, or its prediction ended more than 00:05:00 ago (Gateway:Streams:Retention).", failure.Message);
        Assert.StartsWith("gw-", await connection.InvokeAsync<string>("GetSocketIOClientId"));
    }

    [Fact]
    public async Task A_stream_is_forgotten_once_its_retention_has_passed()
    {
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Streams:Retention"] = "00:00:01" });
        await using var connection = await HubClients.StartAsync(gateway.HubUrl);
        var (streamId, _) = await Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "keep me" }));

        // Polled, not slept: the sweep runs on the gateway's own clock.
        HubException? forgotten = null;
        using var deadline = new CancellationTokenSource(Timeout);
        while (forgotten is null)
        {
            deadline.Token.ThrowIfCancellationRequested();
            try
            {
                await Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", streamId, 0L));
                await Task.Delay(TimeSpan.FromMilliseconds(100), deadline.Token);
            }
            catch (HubException e)
            {
                forgotten = e;
            }
        }

        Assert.Contains("ended more than 00:00:01 ago (Gateway:Streams:Retention)", forgotten.Message);
    }

    [Fact]
    public async Task A_stream_keeps_at_most_MaxEventsPerStream_events_and_a_resume_that_needs_dropped_ones_is_told_where_to_start()
    {
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Streams:MaxEventsPerStream"] = "10" });

        // Asked, then left at once: nobody reads it live, so the bound alone decides what is kept.
        var asking = await HubClients.StartAsync(gateway.HubUrl);
        var stream = asking.StreamAsyncCore<Predictions.Item>("Predict", ["tokens", new { question = "b", overrideConfig = new { count = 50, rate = 0 } }]).GetAsyncEnumerator();
        Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(Timeout));
        var streamId = stream.Current.Data.GetProperty("streamId").GetString()!;
        await asking.DisposeAsync();
        var kept = gateway.Services.GetRequiredService<MemoryStreamStore>();
        await WaitUntilAsync(() => kept.TryGet(streamId, out var s) && s.IsEnded, "the prediction to end");
        Assert.True(kept.TryGet(streamId, out var ended));
        var lastEvent = ended.LastSeq;

        await using var connection = await HubClients.StartAsync(gateway.HubUrl);
        var trimmed = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", streamId, 0L)));
        var (_, tail) = await Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", streamId, lastEvent - 10));

        Assert.Contains("Gateway:Streams:MaxEventsPerStream", trimmed.Message);
        Assert.Contains($"resume with afterSeq {lastEvent - 10} or more", trimmed.Message);
        Assert.Equal(Enumerable.Range(0, 11).Select(i => lastEvent - 9 + i), tail.Select(i => i.Seq));
        Assert.Equal("result", tail[^1].Event);
        var tokens = tail.Where(i => i.Event == "token").Select(i => i.Data.GetString()).ToList();
        Assert.NotEmpty(tokens);
        Assert.Equal(Enumerable.Range(50 - tokens.Count, tokens.Count).Select(i => $"b:{i}"), tokens);
    }

    [Fact]
    public async Task With_authentication_on_only_the_principal_that_started_a_stream_may_resume_it()
    {
        const string keyOfA = "gateway-key-of-client-a-0123";
        const string keyOfB = "gateway-key-of-client-b-4567";
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Auth:ApiKeys:0"] = keyOfA,
            ["Gateway:Auth:ApiKeys:1"] = keyOfB,
        });
        await using var a = await HubClients.StartAsync(gateway.HubUrl, connection: o => o.AccessTokenProvider = () => Task.FromResult<string?>(keyOfA));
        await using var anotherOfA = await HubClients.StartAsync(gateway.HubUrl, connection: o => o.AccessTokenProvider = () => Task.FromResult<string?>(keyOfA));
        await using var b = await HubClients.StartAsync(gateway.HubUrl, connection: o => o.AccessTokenProvider = () => Task.FromResult<string?>(keyOfB));
        var (streamId, items) = await Predictions.ReadWithHeaderAsync(a.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "mine" }));

        var refused = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadWithHeaderAsync(b.StreamAsync<Predictions.Item>("Resume", streamId, 0L)));
        var (_, replayed) = await Predictions.ReadWithHeaderAsync(anotherOfA.StreamAsync<Predictions.Item>("Resume", streamId, 0L));

        Assert.Contains($"No stream {streamId} is kept", refused.Message); // the same answer as for an unknown id: it reveals nothing
        Assert.Equal(Render(items), Render(replayed));
    }

    [Fact]
    public async Task Stream_settings_are_checked_at_start_and_the_error_names_the_key()
    {
        var failure = await Assert.ThrowsAnyAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Streams:MaxBytesPerStream"] = "1000000",
            ["Gateway:Streams:MaxTotalBytes"] = "1000",
        }));

        Assert.Contains("Gateway:Streams:MaxTotalBytes (1000) must be at least Gateway:Streams:MaxBytesPerStream (1000000)", failure.Message);
    }

    /// <summary>
    /// Reads the stream's header and its items until <paramref name="tokens"/> tokens are in, and leaves the
    /// stream open: disposing the enumerator would cancel it, which is not what a reload does.
    /// </summary>
    private static async Task<(string StreamId, List<Predictions.Item> Items)> ReadSomeAsync(HubConnection connection, string method, object?[] args, int tokens)
    {
        var stream = connection.StreamAsyncCore<Predictions.Item>(method, args).GetAsyncEnumerator();
        var items = new List<Predictions.Item>();
        string? streamId = null;
        while (items.Count(i => i.Event == "token") < tokens)
        {
            Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(Timeout), "The stream ended early.");
            var item = stream.Current;
            if (streamId is null)
            {
                Assert.Equal(Predictions.StreamHeader, item.Event);
                streamId = item.Data.GetProperty("streamId").GetString();
                continue;
            }

            items.Add(item);
        }

        return (streamId!, items);
    }

    /// <summary>Waits for state inside the gateway that no event announces, asking again at a short interval.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while (!condition())
        {
            Assert.False(deadline.IsCancellationRequested, $"Timed out waiting for {what}.");
            await Task.Delay(TimeSpan.FromMilliseconds(20), CancellationToken.None);
        }
    }

    private static List<string> Render(IEnumerable<Predictions.Item> items) =>
        items.Select(i => $"{i.Seq} {i.Event} {AllEvents.Canonical(i.Data.ValueKind == System.Text.Json.JsonValueKind.Undefined ? "null" : i.Data.GetRawText())}").ToList();
}
