using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// The test upstream as a newcomer's stand-in for TROM.AI (README, "Run it"): its <c>demo</c> chatflow is listed and
/// streams a readable answer with its sources through a gateway, in either era.
/// </summary>
public sealed class DemoChatflowTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task The_stand_in_lists_the_demo_chatflow_and_streams_its_answer_word_by_word_through_a_default_gateway()
    {
        await using var upstream = await TestUpstream.StartAsync(); // what `node server.js` starts: the Socket.IO era
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        var events = new EventRecorder();
        await using var connection = HubClients.Create(gateway.HubUrl);
        events.Listen(connection, "start", "token", "sourceDocuments", "end");
        await connection.StartAsync();

        var chatflows = await gateway.Http.GetFromJsonAsync<JsonElement>("api/v1/chatflows");
        // At its own pace (30 tokens/s), as the playground shows it.
        var (status, answer) = await Predictions.PostAsync(gateway.Http, "demo",
            new { question = "What is this?", socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId") });

        Assert.Contains(chatflows.EnumerateArray(), c => c.GetProperty("id").GetString() == "demo");
        Assert.Equal(HttpStatusCode.OK, status);
        await events.WaitForEventAsync("end", Timeout);
        var received = events.Snapshot();
        var tokens = received.Where(e => e.Name == "token").Select(e => e.Args[0].GetString()).ToList();
        var text = answer.GetProperty("text").GetString()!;
        Assert.Contains("You asked: \"What is this?\"", text);
        Assert.True(tokens.Count > 20, $"{tokens.Count} tokens");
        Assert.Equal(text, string.Concat(tokens));
        Assert.Equal(["start", .. tokens.Select(_ => "token"), "sourceDocuments", "end"], received.Select(e => e.Name));
        Assert.Equal(answer.GetProperty("sourceDocuments").GetRawText(), received[^2].Args[0].GetRawText());
    }

    [Theory]
    [InlineData(TestUpstreamMode.Sse)]
    [InlineData(TestUpstreamMode.TromAi3)]
    public async Task Over_SSE_Predict_on_the_demo_yields_its_words_then_sources_and_an_answer_with_them(TestUpstreamMode mode)
    {
        await using var upstream = await TestUpstream.StartAsync(mode);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "sse" });
        await using var connection = await HubClients.StartAsync(gateway.HubUrl);

        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "demo",
            new { question = "And over SSE?", overrideConfig = new { rate = 0 } }));

        var tokens = items.Where(i => i.Event == "token").Select(i => i.Data.GetString()).ToList();
        Assert.Equal(["start", .. tokens.Select(_ => "token"), "sourceDocuments", "metadata", "end", "result"], items.Select(i => i.Event));
        var answer = items[^1].Data;
        Assert.Equal(string.Concat(tokens), answer.GetProperty("text").GetString());
        Assert.Equal(items[^4].Data.GetRawText(), answer.GetProperty("sourceDocuments").GetRawText());
    }
}
