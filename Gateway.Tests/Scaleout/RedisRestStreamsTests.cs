using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using TromAi.Gateway.Tests.Proxy;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// A REST prediction is kept whichever instance it lands on: its hub connection's instance, where the
/// events arrive, records the stream; the instance that forwarded the POST reports the answer. A client
/// that loses its connection resumes the rest on any instance, even when the REST caller went too.
/// </summary>
public sealed class RedisRestStreamsTests : RedisTestBase
{
    private static readonly string[] StreamEvents = [Predictions.StreamHeader, "gateway:stream-end", "start", "token", "end"];

    [Fact]
    public async Task A_REST_prediction_posted_at_another_instance_is_kept_and_a_client_that_drops_resumes_the_rest_exactly_once()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var events = new EventRecorder();
        var (lost, id) = await ConnectAsync(a, b, events);

        var rest = Predictions.PostAsync(b.Http, "tokens", new { question = "x", socketIOClientId = id, overrideConfig = new { count = 200, rate = 50 } });
        await events.WaitForAsync(e => e.Count(x => x.Name == "token") >= 10, Timeout);
        await lost.DisposeAsync();
        var seen = events.Snapshot();
        var streamId = StreamIdOf(seen);
        await using var resumed = await HubClients.StartAsync(b.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, (long)(seen.Count - 1)));
        var (status, answer) = await rest.WaitAsync(Timeout);

        Assert.Equal(streamId, resumedId);
        AssertRestOfStream(seen, after, "x", 200);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(answer.GetProperty("text").GetString(), after[^1].Data.GetProperty("text").GetString());
    }

    [Fact]
    public async Task A_REST_prediction_posted_at_another_instance_completes_its_stream_after_both_the_client_and_the_REST_caller_went()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var events = new EventRecorder();
        var (lost, id) = await ConnectAsync(a, b, events);

        using var callerGone = new CancellationTokenSource();
        var rest = b.Http.PostAsJsonAsync("api/v1/prediction/tokens", new { question = "g", socketIOClientId = id, overrideConfig = new { count = 200, rate = 50 } }, callerGone.Token);
        await events.WaitForAsync(e => e.Count(x => x.Name == "token") >= 10, Timeout);
        await lost.DisposeAsync();
        await callerGone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rest);
        var seen = events.Snapshot();
        var streamId = StreamIdOf(seen);

        // Resumed where the connection was: the stream ends only once B reports TROM.AI's answer, which it still waits for.
        await using var resumed = await HubClients.StartAsync(a.HubUrl);
        var (resumedId, after) = await Predictions.ReadWithHeaderAsync(resumed.StreamAsync<Predictions.Item>("Resume", streamId, (long)(seen.Count - 1)));

        Assert.Equal(streamId, resumedId);
        AssertRestOfStream(seen, after, "g", 200);
    }

    [Fact]
    public async Task When_the_connection_s_instance_cannot_keep_the_stream_the_prediction_still_streams_and_answers_and_the_log_says_why()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();

        // A no longer listens for the streams it should keep (an instance of an older gateway does not either).
        await a.Services.GetRequiredService<RedisRestStreams>().StopAsync(CancellationToken.None);
        using var log = LogCapture.Attach(b.Services);
        var events = new EventRecorder();
        var (connection, id) = await ConnectAsync(a, b, events);
        await using var _ = connection;

        var (status, answer) = await Predictions.PostAsync(b.Http, "tokens", new { question = "u", socketIOClientId = id, overrideConfig = new { count = 20, rate = 0 } });
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);

        Assert.Equal(HttpStatusCode.OK, status);
        var seen = events.Snapshot();
        Assert.DoesNotContain(seen, e => e.Name.StartsWith("gateway:", StringComparison.Ordinal));
        var tokens = seen.Where(e => e.Name == "token").Select(e => e.Args[0].GetString()).ToList();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"u:{i}"), tokens);
        Assert.Equal(string.Concat(tokens), answer.GetProperty("text").GetString());
        Assert.Contains(log.Entries, e => e.StartsWith("Warning", StringComparison.Ordinal)
            && e.Contains("is forwarded without keeping its stream: no instance listens on its channel on Redis", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Malformed_messages_on_an_instance_s_channel_are_dropped_and_its_next_REST_stream_is_still_kept()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Redis.Configuration);
        var channelOfA = RedisChannel.Literal($"tromai-gateway:rest-streams:{a.Services.GetRequiredService<SessionDirectory>().InstanceId}");
        string[] malformed =
        [
            "not json",
            """{"kind":"begin","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""",
            """{"kind":"begin","streamId":"not-a-stream-id","socketIOClientId":"gw-AAAAAAAAAAAAAAAAAAAAAA","chatflowId":"tokens","replyTo":"x"}""",
            """{"kind":"end","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""",
            """{"kind":"end","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA","error":"an end for no stream"}""",
            """{"kind":"what","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""",
        ];
        foreach (var message in malformed)
        {
            Assert.Equal(1, await redis.GetSubscriber().PublishAsync(channelOfA, message)); // A reads them
        }

        var events = new EventRecorder();
        var (connection, id) = await ConnectAsync(a, b, events);
        await using var _ = connection;
        var (status, answer) = await Predictions.PostAsync(b.Http, "tokens", new { question = "m", socketIOClientId = id, overrideConfig = new { count = 20, rate = 0 } });
        await events.WaitForAsync(e => e.Any(x => x.Name == "gateway:stream-end"), Timeout);
        var (_, replayed) = await Predictions.ReadWithHeaderAsync(connection.StreamAsync<Predictions.Item>("Resume", StreamIdOf(events.Snapshot()), 0L));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"m:{i}"), replayed.Where(i => i.Event == "token").Select(i => i.Data.GetString()));
        Assert.Equal(answer.GetProperty("text").GetString(), replayed[^1].Data.GetProperty("text").GetString());
    }

    /// <summary>A hub connection on <paramref name="a"/>, recorded by <paramref name="events"/>, once <paramref name="b"/> can find it.</summary>
    private static async Task<(HubConnection Connection, string SocketIOClientId)> ConnectAsync(GatewayHost a, GatewayHost b, EventRecorder events)
    {
        var connection = HubClients.Create(a.HubUrl);
        events.Listen(connection, StreamEvents);
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found);
        return (connection, id);
    }

    /// <summary>The id the <c>gateway:stream</c> notice gave, which must come before any of the prediction's events.</summary>
    private static string StreamIdOf(IReadOnlyList<RecordedEvent> seen)
    {
        Assert.True(seen.Count > 0 && seen[0].Name == Predictions.StreamHeader, $"The client got no {Predictions.StreamHeader} notice first: {string.Join(", ", seen.Take(3))}");
        var streamId = seen[0].Args[0].GetProperty("streamId").GetString()!;
        Assert.StartsWith("st-", streamId);
        return streamId;
    }

    /// <summary>
    /// What the client saw live (numbered by its place after the notice) and what the resume gave after it are
    /// the whole prediction: no gap, no duplicate, every token in order, and the answer made of them.
    /// </summary>
    private static void AssertRestOfStream(IReadOnlyList<RecordedEvent> seen, List<Predictions.Item> after, string question, int count)
    {
        Assert.Equal(Enumerable.Range(seen.Count, after.Count).Select(i => (long)i), after.Select(i => i.Seq));
        var tokens = seen.Where(e => e.Name == "token").Select(e => e.Args[0].GetString())
            .Concat(after.Where(i => i.Event == "token").Select(i => i.Data.GetString()))
            .ToList();
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"{question}:{i}"), tokens);
        Assert.Equal("result", after[^1].Event);
        Assert.Equal(string.Concat(tokens), after[^1].Data.GetProperty("text").GetString());
    }
}
