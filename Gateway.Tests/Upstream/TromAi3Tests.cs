using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>TROM.AI 3.x (as 3.1.4 behaves) behind a gateway in SSE mode: Agentflow V2, API keys, heartbeats, a slow metadata.</summary>
public sealed class TromAi3Tests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>What the upstream's Agentflow V2 streams, in order (see upstream/README.md).</summary>
    private static readonly string[] AgentflowEvents =
    [
        "agentFlowEvent", "nextAgentFlow", "nextAgentFlow", "agentFlowExecutedData", "nextAgentFlow", "calledTools", "usedTools", "sourceDocuments",
        .. Enumerable.Repeat("token", 10), "usageMetadata", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "metadata", "end",
    ];

    private TestUpstream _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        // Heartbeats every 20 ms, so every stream in these tests has them between its events.
        _upstream = await TestUpstream.StartAsync(TestUpstreamMode.TromAi3, new Dictionary<string, string> { ["HEARTBEAT_MS"] = "20" });
        _gateway = await GatewayHost.StartAsync(_upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "sse" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task An_agentflow_asked_over_REST_for_a_hub_connection_streams_its_events_and_answers_what_TROM_AI_answers_without_streaming()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(_gateway.HubUrl);
        events.Listen(connection, AgentflowEvents.Distinct());
        await connection.StartAsync();
        var chatId = Guid.NewGuid().ToString();

        var (status, answer) = await Predictions.PostAsync(_gateway.Http, "agentflow",
            new { question = "6*7?", chatId, socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId") });
        var (_, direct) = await Predictions.PostAsync(_upstream.Http, "agentflow", new { question = "6*7?", chatId });

        Assert.Equal(HttpStatusCode.OK, status);
        AssertSameAnswer(direct, answer);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        var received = events.Snapshot();
        Assert.Equal(AgentflowEvents, received.Select(e => e.Name));
        Assert.Equal("FINISHED", received[^3].Args[0].GetString());
        Assert.Equal(answer.GetProperty("chatMessageId").GetString(), received[^2].Args[0].GetProperty("chatMessageId").GetString());
    }

    [Fact]
    public async Task Predict_on_an_agentflow_ends_with_what_TROM_AI_answers_without_streaming()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        var chatId = Guid.NewGuid().ToString();

        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "agentflow", new { question = "6*7?", chatId }));
        var (_, direct) = await Predictions.PostAsync(_upstream.Http, "agentflow", new { question = "6*7?", chatId });

        Assert.Equal([.. AgentflowEvents, "result"], items.Select(i => i.Event));
        AssertSameAnswer(direct, items[^1].Data);
    }

    [Fact]
    public async Task While_TROM_AI_works_on_the_metadata_the_events_have_arrived_and_heartbeats_keep_the_answer_whole()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(_gateway.HubUrl);
        events.Listen(connection, "agentFlowEvent", "metadata", "end");
        await connection.StartAsync();
        await _upstream.SetTimingAsync(heartbeat: TimeSpan.FromMilliseconds(10), metadataDelay: TimeSpan.FromMilliseconds(50));
        var gate = Guid.NewGuid().ToString();

        // holdMetadata: the upstream holds metadata and end until the gate opens, as 3.x does while it estimates token usage.
        var prediction = Predictions.PostAsync(_gateway.Http, "agentflow", new
        {
            question = "slow?",
            socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId"),
            overrideConfig = new { holdMetadata = gate },
        });
        await events.WaitForEventAsync("agentFlowEvent", Timeout, e => e.Args[0].GetString() == "FINISHED");
        var heartbeats = await _upstream.HeartbeatsSentAsync();
        await WaitForHeartbeatsAsync(heartbeats + 3);

        Assert.False(prediction.IsCompleted);
        Assert.DoesNotContain(events.Snapshot(), e => e.Name is "metadata" or "end");
        Assert.True(await _upstream.ReleaseAsync(gate));
        var (status, answer) = await prediction.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Agentflow V2 looked that up: slow? = 42.", answer.GetProperty("text").GetString());
        Assert.Equal("slow?", answer.GetProperty("question").GetString());
        Assert.Equal(2, answer.GetProperty("agentFlowExecutedData").GetArrayLength());
        await events.WaitForEventAsync("end", Timeout);
    }

    [Fact]
    public async Task A_chatflow_with_an_API_key_answers_500_Unauthorized_without_it_on_every_path_and_streams_with_it()
    {
        await _upstream.SetApiKeysAsync(new Dictionary<string, string> { ["echo-question"] = "key-1" });
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        const string Unauthorized = "Error: predictionsServices.buildChatflow - Unauthorized";

        var (plainStatus, plain) = await Predictions.PostAsync(_gateway.Http, "echo-question", new { question = "hi" });
        var (relayedStatus, relayed) = await Predictions.PostAsync(_gateway.Http, "echo-question", new { question = "hi", socketIOClientId = id });
        var predict = await Assert.ThrowsAsync<HubException>(() =>
            Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "hi" })));
        using var keyed = new HttpRequestMessage(HttpMethod.Post, "api/v1/prediction/echo-question")
        {
            Content = JsonContent.Create(new { question = "with the key", socketIOClientId = id }),
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "key-1") },
        };
        using var keyedResponse = await _gateway.Http.SendAsync(keyed);

        // Plain JSON: TROM.AI's own 500, proxied. Over SSE TROM.AI answers 200 and an error event, which the gateway makes the same 500.
        Assert.Equal(HttpStatusCode.InternalServerError, plainStatus);
        Assert.Equal(Unauthorized, plain.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.InternalServerError, relayedStatus);
        Assert.Equal(Unauthorized, relayed.GetProperty("message").GetString());
        Assert.Contains(Unauthorized, predict.Message);
        Assert.Equal(HttpStatusCode.OK, keyedResponse.StatusCode);
        Assert.Equal("with the key", (await keyedResponse.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("text").GetString());
    }

    [Fact]
    public async Task The_chatflow_list_wants_an_API_key_or_the_web_UIs_header()
    {
        await _upstream.SetApiKeysAsync(new Dictionary<string, string>(), "admin-key");

        using var anonymous = await _gateway.Http.GetAsync("api/v1/chatflows");
        using var fromTheUi = await _gateway.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "api/v1/chatflows") { Headers = { { "x-request-from", "internal" } } });
        using var withKey = await _gateway.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "api/v1/chatflows?type=AGENTFLOW")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "admin-key") },
        });

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("Unauthorized Access", (await anonymous.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
        var all = await fromTheUi.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(all.EnumerateArray(), c => c.GetProperty("id").GetString() == "demo" && c.GetProperty("type").GetString() == "CHATFLOW");
        var agentflows = await withKey.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("agentflow", Assert.Single(agentflows.EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task Auto_mode_takes_3x_for_SSE_and_its_ping_passes_through()
    {
        await using var gateway = await GatewayHost.StartAsync(_upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "auto" });
        var events = new EventRecorder();
        await using var connection = HubClients.Create(gateway.HubUrl);
        events.Listen(connection, "token", "end");
        await connection.StartAsync();

        var (status, answer) = await Predictions.PostAsync(gateway.Http, "echo-question",
            new { question = "which era?", socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId") });
        var ping = await gateway.Http.GetStringAsync("api/v1/ping");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("which era?", answer.GetProperty("text").GetString());
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("which era?", events.Snapshot()[0].Args[0].GetString());
        Assert.Equal("pong", ping);
    }

    /// <summary>
    /// The assembled answer is TROM.AI's non-streaming one, member for member, except its <c>executionId</c>, which no
    /// event carries. Both carry a <c>chatMessageId</c>, each its own: two predictions are two messages.
    /// </summary>
    private static void AssertSameAnswer(JsonElement direct, JsonElement assembled)
    {
        Assert.True(direct.TryGetProperty("executionId", out _));
        Assert.False(assembled.TryGetProperty("executionId", out _));
        Assert.False(string.IsNullOrEmpty(assembled.GetProperty("chatMessageId").GetString()));
        var expected = SsePredictionResultTests.Without(direct, "executionId", "chatMessageId");
        var actual = SsePredictionResultTests.Without(assembled, "chatMessageId");
        Assert.True(JsonElement.DeepEquals(expected, actual), $"expected {expected.GetRawText()}\nactual   {actual.GetRawText()}");
    }

    private async Task WaitForHeartbeatsAsync(int atLeast)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        int sent;
        while ((sent = await _upstream.HeartbeatsSentAsync()) < atLeast)
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"The upstream sent {sent} heartbeats, expected at least {atLeast}.");
            }

            // A counter in another process with no push channel: re-ask, briefly spaced.
            await Task.Delay(20);
        }
    }
}
