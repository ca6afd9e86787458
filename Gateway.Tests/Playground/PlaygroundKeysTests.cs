using System.Text.Json;
using System.Text.Json.Nodes;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Playground;

/// <summary>
/// The playground in front of TROM.AI 3.x, whose chatflow list wants an API key and whose chatflows can
/// have keys of their own: the key the user enters reaches TROM.AI as README's "TROM.AI keys" says, on
/// the list, REST predictions and the hub's Predict, with the gateway's authentication off and on.
/// </summary>
public sealed class PlaygroundKeysTests : IAsyncLifetime
{
    private const string TromAiKey = "chatflow-key-1";
    private const string GatewayKey = "gateway-key-1";

    private TestUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await TestUpstream.StartAsync(TestUpstreamMode.TromAi3);
        await _upstream.SetApiKeysAsync(new Dictionary<string, string> { ["echo-question"] = TromAiKey, ["agentflow"] = TromAiKey });
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private Task<GatewayHost> StartGatewayAsync(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Gateway:Playground:Enabled"] = "true", ["Gateway:Upstream:Streaming"] = "sse" };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return GatewayHost.StartAsync(_upstream.BaseUrl, all);
    }

    [Fact]
    public async Task Page_shows_why_TROM_AI_3_refuses_the_list_and_with_the_key_entered_lists_it_and_answers_a_keyed_chatflow_both_ways()
    {
        await using var gateway = await StartGatewayAsync();

        var result = await PlaygroundBrowser.RunAsync("keys", gateway.BaseUrl, _upstream.BaseUrl, new { TromAiKey });

        var requests = await _upstream.RequestsAsync();
        var lists = requests.Where(r => (string?)r!["path"] == "/api/v1/chatflows").Select(Authorization).ToList();
        Assert.Equal(new[] { null, $"Bearer {TromAiKey}" }, lists);
        Assert.Null(Authorization(Prediction(requests, "echo-question", result.GetProperty("refusedChatId"))));
        Assert.Equal($"Bearer {TromAiKey}", Authorization(Prediction(requests, "echo-question", result.GetProperty("restChatId"))));
        // Predict: the key came with the hub connection (its access_token), and the gateway sent it on.
        Assert.Equal($"Bearer {TromAiKey}", Authorization(Prediction(requests, "agentflow", result.GetProperty("predictChatId"))));
    }

    [Fact]
    public async Task With_gateway_authentication_on_the_page_asks_for_a_gateway_key_and_TROM_AI_gets_only_its_own_key()
    {
        await using var gateway = await StartGatewayAsync(("Gateway:Auth:ApiKeys:0", GatewayKey));

        var result = await PlaygroundBrowser.RunAsync("gateway-auth", gateway.BaseUrl, _upstream.BaseUrl, new { TromAiKey, GatewayKey });

        var requests = await _upstream.RequestsAsync();
        Assert.Equal($"Bearer {TromAiKey}", Authorization(Prediction(requests, "echo-question", result.GetProperty("restChatId"))));
        // A browser's WebSocket carries one credential, the gateway's: the page gave its connection the TROM.AI key by UseTromAiKey.
        Assert.Equal($"Bearer {TromAiKey}", Authorization(Prediction(requests, "echo-question", result.GetProperty("predictChatId"))));
        Assert.DoesNotContain(GatewayKey, requests.ToJsonString(), StringComparison.Ordinal);
    }

    private static JsonNode Prediction(JsonArray requests, string chatflow, JsonElement chatId) =>
        Assert.Single(requests, r => (string?)r!["path"] == $"/api/v1/prediction/{chatflow}" && (string?)r["body"]?["chatId"] == chatId.GetString())!;

    private static string? Authorization(JsonNode? request) => (string?)request!["headers"]!["authorization"];
}
