using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>
/// What users see when the Redis that instances share goes away and comes back (README, "When Redis
/// is in trouble"): a real redis-server, killed and restarted under traffic.
/// </summary>
public sealed class RedisOutageTests(ITestOutputHelper output) : RedisTestBase
{
    private const int Tokens = 19;
    [Fact]
    public async Task During_an_outage_every_instance_stays_ready_and_serves_its_own_connections_and_another_s_get_503()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var (older, olderEvents, olderId) = await ConnectAsync(a);
        await using var _ = older;

        await Redis.StopAsync();

        foreach (var gateway in new[] { a, b })
        {
            var readiness = await WaitForRedisStatusAsync(gateway, "Degraded");
            Assert.Equal(HttpStatusCode.OK, readiness.Status); // Kubernetes keeps every instance in
            Assert.Equal("Degraded", readiness.Body.GetProperty("status").GetString());
        }

        var (fresh, _, freshId) = await ConnectAsync(a);
        await using var __ = fresh;
        var streamed = await Predictions.ReadAllAsync(fresh.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "by hub" }));
        Assert.Equal(["token", "end", "result"], streamed.Select(item => item.Event));
        Assert.Equal("by hub", streamed[0].Data.GetString());

        var (status, _) = await Predictions.PostAsync(a.Http, "tokens", new { question = "rest", socketIOClientId = olderId, overrideConfig = new { count = Tokens } });
        Assert.Equal(HttpStatusCode.OK, status);
        await olderEvents.WaitForEventAsync("end", Timeout);
        Assert.Equal(TokensOf("rest"), olderEvents.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()));

        using var elsewhere = await b.Http.PostAsJsonAsync("api/v1/prediction/tokens", new { question = "elsewhere", socketIOClientId = freshId });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, elsewhere.StatusCode);
        Assert.NotNull(elsewhere.Headers.RetryAfter);
        Assert.Contains("retry", await elsewhere.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(await Upstream.RequestsAsync(), request => (string?)request!["body"]?["question"] == "elsewhere"); // nothing went to where no event would arrive
    }

    [Fact]
    public async Task Predictions_posted_on_another_instance_through_a_Redis_restart_are_refused_with_503_or_delivered_in_full()
    {
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var (connection, events, id) = await ConnectAsync(a);
        await using var _ = connection;
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found);
        var answers = new List<(string Question, HttpStatusCode Status, bool RetryAfter)>();

        async Task<HttpStatusCode> PostAsync()
        {
            var question = $"p{answers.Count}";
            using var response = await b.Http.PostAsJsonAsync("api/v1/prediction/tokens", new { question, socketIOClientId = id, overrideConfig = new { count = Tokens } });
            answers.Add((question, response.StatusCode, response.Headers.RetryAfter is not null));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                await events.WaitForAsync(e => HasToken(e, $"{question}:{Tokens - 1}"), Timeout);
            }

            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await PostAsync());
        await Redis.StopAsync();
        await SharedRedis.WaitUntilAsync(async () => await PostAsync() == HttpStatusCode.ServiceUnavailable, () => "a prediction on B to be refused while Redis is down");
        await PostAsync();
        await Redis.StartAsync();
        await SharedRedis.WaitUntilAsync(async () => await PostAsync() == HttpStatusCode.OK, () => "a prediction on B to be delivered once Redis is back");

        var received = events.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()!).ToList();
        foreach (var (question, status, retryAfter) in answers)
        {
            var delivered = received.Where(token => token.StartsWith(question + ":", StringComparison.Ordinal)).ToList();
            if (status == HttpStatusCode.OK)
            {
                Assert.Equal(TokensOf(question), delivered);
            }
            else
            {
                Assert.Equal((HttpStatusCode.ServiceUnavailable, true), (status, retryAfter));
                Assert.Empty(delivered);
            }
        }

        output.WriteLine(string.Join(", ", answers.Select(x => $"{x.Question}: {(int)x.Status}")));
    }

    [Fact]
    public async Task After_Redis_restarts_every_session_of_one_instance_is_found_again_from_the_other()
    {
        const int sessions = 20;
        await using var a = await StartGatewayAsync();
        await using var b = await StartGatewayAsync();
        var clients = new List<(HubConnection Connection, EventRecorder Events, string Id)>();
        try
        {
            for (var i = 0; i < sessions; i++)
            {
                clients.Add(await ConnectAsync(a));
            }

            foreach (var client in clients)
            {
                await b.WaitForLookupAsync(client.Id, SessionLookupStatus.Found);
            }

            await Redis.StopAsync();
            await WaitForRedisStatusAsync(a, "Degraded"); // both retrying by now
            await WaitForRedisStatusAsync(b, "Degraded");
            await Redis.StartAsync(); // empty: no persistence
            var sinceBack = Stopwatch.StartNew();
            foreach (var client in clients)
            {
                await b.WaitForLookupAsync(client.Id, SessionLookupStatus.Found);
            }

            output.WriteLine($"All {sessions} sessions of instance A were found from instance B {sinceBack.ElapsedMilliseconds} ms after Redis answered again.");
        }
        finally
        {
            await Task.WhenAll(clients.Select(client => client.Connection.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task An_instance_started_while_Redis_is_down_joins_the_others_when_Redis_comes_up()
    {
        await using var late = new RedisServer(); // its port, nothing listening yet
        await using var a = await StartGatewayAsync(redis: late);
        var (connection, events, id) = await ConnectAsync(a);
        await using var _ = connection;
        var (status, _) = await Predictions.PostAsync(a.Http, "echo-question", new { question = "alone", socketIOClientId = id });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Degraded", (await WaitForRedisStatusAsync(a, "Degraded")).Body.GetProperty("status").GetString());

        await late.StartAsync();
        await using var b = await StartGatewayAsync(redis: late);
        await b.WaitForLookupAsync(id, SessionLookupStatus.Found);
        await WaitForRedisStatusAsync(a, "Healthy");
        var hub = b.Services.GetRequiredService<IHubContext<PredictionHub>>();
        await SharedRedis.WaitUntilAsync(async () =>
        {
            await hub.Clients.All.SendAsync("notice", "welcome");
            return events.Snapshot().Any(e => e.Name == "notice");
        }, () => "a message from instance B to all to arrive at instance A's client");
    }

    private static Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAsync(GatewayHost gateway) =>
        HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end", "notice");

    private static IEnumerable<string> TokensOf(string question) => Enumerable.Range(0, Tokens).Select(i => $"{question}:{i}");

    private static bool HasToken(IReadOnlyList<RecordedEvent> events, string token) =>
        events.Any(e => e.Name == "token" && e.Args[0].GetString() == token);

    /// <summary>Asks <c>/readyz</c> until its Redis check reports <paramref name="redisStatus"/>; returns that answer.</summary>
    private static async Task<(HttpStatusCode Status, JsonElement Body)> WaitForRedisStatusAsync(GatewayHost gateway, string redisStatus)
    {
        (HttpStatusCode Status, JsonElement Body) answer = default;
        await SharedRedis.WaitUntilAsync(async () =>
        {
            using var response = await gateway.Http.GetAsync("readyz");
            answer = (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
            return answer.Body.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString() == redisStatus;
        }, () => $"/readyz to report redis {redisStatus} (last: {answer.Body})");
        return answer;
    }
}
