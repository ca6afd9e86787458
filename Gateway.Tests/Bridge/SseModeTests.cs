using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>An SSE-era TROM.AI (no Socket.IO at all) behind the gateway: clients see the same events as before.</summary>
public sealed class SseModeTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private TestUpstream _upstream = null!;
    private GatewayHost _gateway = null!;

    /// <summary>What the SSE upstream's all-events flow sends: the one-argument entries of all-events.json, then metadata and end.</summary>
    private static IEnumerable<(string Name, string ArgsJson)> ExpectedSingleArgumentEvents =>
        AllEvents.Expected.Where(e => JsonDocument.Parse(e.ArgsJson).RootElement.GetArrayLength() == 1);

    public async Task InitializeAsync()
    {
        _upstream = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });
        _gateway = await GatewayHost.StartAsync(_upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "sse" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_REST_prediction_naming_a_hub_connection_streams_to_it_and_answers_the_assembled_json()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(_gateway.HubUrl);
        events.Listen(connection, [.. Predictions.AllEventNames, "metadata"]);
        await connection.StartAsync(); // the upstream has no Socket.IO endpoint: nothing to wait for
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var (status, answer) = await Predictions.PostAsync(_gateway.Http, "all-events", new { question = "Hi", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Hello after end", answer.GetProperty("text").GetString());
        Assert.Equal("Hi", answer.GetProperty("question").GetString());
        Assert.Equal("Buffer Memory", answer.GetProperty("memoryType").GetString());
        Assert.Equal(3, answer.GetProperty("sourceDocuments")[0].GetProperty("metadata").GetProperty("page").GetInt32());
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        var received = events.Snapshot();
        Assert.Equal(
            ExpectedSingleArgumentEvents.Select(e => $"{e.Name} {e.ArgsJson}"),
            received.Where(e => e.Name is not ("metadata" or "end")).Select(e => $"{e.Name} {AllEvents.Canonical(JsonSerializer.Serialize(e.Args))}"));
        Assert.Equal(["metadata", "end"], received.TakeLast(2).Select(e => e.Name));
        Assert.Empty(received[^1].Args); // "[DONE]" is the SSE framing of an end without argument

        var forwarded = (await _upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/all-events")!["body"]!;
        Assert.True((bool)forwarded["streaming"]!);
        Assert.Null(forwarded["socketIOClientId"]);
    }

    [Fact]
    public async Task A_multipart_REST_prediction_naming_a_hub_connection_asks_for_a_stream()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(_gateway.HubUrl);
        events.Listen(connection, "token", "end", "metadata");
        await connection.StartAsync();
        using var form = new MultipartFormDataContent
        {
            { new StringContent("with a file"), "question" },
            { new StringContent(await connection.InvokeAsync<string>("GetSocketIOClientId")), "socketIOClientId" },
            { new ByteArrayContent([1, 2, 3]) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } }, "files", "notes.txt" },
        };

        using var response = await _gateway.Http.PostAsync("api/v1/prediction/echo-question", form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("with a file", events.Snapshot().First(e => e.Name == "token").Args[0].GetString());
        var forwarded = (await _upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/echo-question")!;
        Assert.Equal("true", (string)forwarded["body"]!["streaming"]!);
        Assert.Equal("notes.txt", (string)forwarded["files"]![0]!["originalname"]!);
    }

    [Fact]
    public async Task Predict_over_SSE_yields_the_same_events_and_ends_with_the_answer()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);

        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "all-events", new { question = "Hi" }));

        Assert.Equal(
            ExpectedSingleArgumentEvents.Select(e => $"{e.Name} {AllEvents.Canonical(JsonDocument.Parse(e.ArgsJson).RootElement[0].GetRawText())}"),
            items.Where(i => i.Event is not ("metadata" or "end" or "result")).Select(i => $"{i.Event} {AllEvents.Canonical(i.Data.GetRawText())}"));
        Assert.Equal(["metadata", "end", "result"], items.TakeLast(3).Select(i => i.Event));
        Assert.Equal("Hello after end", items[^1].Data.GetProperty("text").GetString());
    }

    [Fact]
    public async Task An_error_event_ends_Predict_with_a_HubException_and_a_REST_prediction_with_500()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var error = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "error", new { question = "Hi" })));
        var (status, body) = await Predictions.PostAsync(_gateway.Http, "error", new { question = "Hi", socketIOClientId = id });

        Assert.Contains("TROM.AI reported an error: Flow failed: boom", error.Message);
        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal("Flow failed: boom", body.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_flow_that_cannot_stream_answers_plain_json_through_Predict_and_REST()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "not-streamable", new { question = "plain" }));
        var (status, body) = await Predictions.PostAsync(_gateway.Http, "not-streamable", new { question = "plain", socketIOClientId = id });

        Assert.Equal("result", Assert.Single(items).Event);
        Assert.Equal("plain", items[0].Data.GetProperty("text").GetString());
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("plain", body.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Cancelling_Predict_over_SSE_aborts_the_prediction_upstream()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        using var cancel = new CancellationTokenSource();
        var chatId = Guid.NewGuid().ToString();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                new { question = "long", chatId, overrideConfig = new { count = 100_000, rate = 100 } }, cancel.Token))
            {
                if (item.Event == "token")
                {
                    await cancel.CancelAsync();
                }
            }
        }).WaitAsync(Timeout);

        await _upstream.WaitForRequestAsync($"/api/v1/chatmessage/abort/tokens/{chatId}", Timeout);
    }

    [Theory]
    [InlineData("sse")]
    [InlineData(null)]
    public async Task Auto_mode_asks_the_upstream_how_it_streams(string? upstreamStreaming)
    {
        await using var upstream = upstreamStreaming is null
            ? await TestUpstream.StartAsync()
            : await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = upstreamStreaming });
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Upstream:Streaming"] = "auto",
            ["Gateway:Upstream:WarmSockets"] = "0", // the upstream's sockets are then the connection's own
        });
        var events = new EventRecorder();
        await using var connection = HubClients.Create(gateway.HubUrl);
        events.Listen(connection, "token", "end");
        await connection.StartAsync();

        var (status, _) = await Predictions.PostAsync(gateway.Http, "echo-question",
            new { question = "which era?", socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId") });

        Assert.Equal(HttpStatusCode.OK, status);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("which era?", events.Snapshot()[0].Args[0].GetString());
        if (upstreamStreaming is null)
        {
            Assert.Equal(1, await upstream.SocketCountAsync()); // Socket.IO era: the connection holds a socket
        }
    }
}
