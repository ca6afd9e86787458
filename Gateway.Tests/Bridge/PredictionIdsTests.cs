using System.Text.Json.Nodes;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>The ids a client gives <c>Predict</c> and <c>Abort</c> stay one segment of TROM.AI's URL, or are refused.</summary>
public sealed class PredictionIdsTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("tokens/../../..")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("%2e%2e")]
    [InlineData("")]
    public async Task Ids_that_are_not_one_URL_segment_are_refused_before_anything_reaches_TROM_AI(string id)
    {
        (await bridge.Upstream.Http.DeleteAsync("test/requests")).EnsureSuccessStatusCode();
        await using var connection = new HubConnectionBuilder().WithUrl(bridge.Gateway.HubUrl).Build();
        await connection.StartAsync();

        var predict = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", id, new { question = "q" })));
        var chatIdInBody = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "echo-question", new JsonObject { ["question"] = "q", ["chatId"] = id == "" ? "../x" : id })));
        var abortFlow = await Assert.ThrowsAsync<HubException>(() => connection.InvokeAsync("Abort", id, "chat"));
        var abortChat = await Assert.ThrowsAsync<HubException>(() => connection.InvokeAsync("Abort", "tokens", id));

        Assert.Contains("chatflowId must be one segment of a TROM.AI URL", predict.Message);
        Assert.Contains("chatId must be one segment of a TROM.AI URL", chatIdInBody.Message);
        Assert.Contains("chatflowId must be one segment of a TROM.AI URL", abortFlow.Message);
        Assert.Contains("chatId must be one segment of a TROM.AI URL", abortChat.Message);
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }
}
