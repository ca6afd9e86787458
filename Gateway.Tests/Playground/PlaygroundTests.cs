using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Playground;

/// <summary>
/// The chat page at <c>/playground/</c>, in real Chromium (Gateway.Tests/browser/playground.spec.mjs):
/// the JavaScript SignalR client end to end, both ways of asking, abort, the gateway's notices, and
/// the chatflows TROM.AI lists. Every scenario also checks, from the browser, that the page opened its
/// hub connection without a negotiate request (see <see cref="PlaygroundLoadBalancerTests"/> for why).
/// </summary>
public sealed class PlaygroundTests(PlaygroundFixture playground) : IClassFixture<PlaygroundFixture>
{
    [Fact]
    public async Task Rest_flow_answer_grows_token_by_token_renders_its_sources_and_stops_when_aborted()
    {
        var result = await PlaygroundBrowser.RunAsync("rest", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);

        // The page sent its own chatId with the question, so that the hub's Abort could name it.
        var chatId = result.GetProperty("abortedChatId").GetString()!;
        var requests = await playground.Upstream.RequestsAsync();
        var asked = Assert.Single(requests, r => IsRequest(r, "POST", "/api/v1/prediction/tokens") && (string?)r!["body"]!["chatId"] == chatId);
        Assert.False(string.IsNullOrEmpty((string?)asked!["body"]!["socketIOClientId"]));
        Assert.Contains(requests, r => IsRequest(r, "PUT", $"/api/v1/chatmessage/abort/tokens/{chatId}"));
    }

    [Fact]
    public async Task Predict_flow_answer_grows_token_by_token_renders_its_sources_and_stops_when_aborted()
    {
        var result = await PlaygroundBrowser.RunAsync("predict", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);

        var chatId = result.GetProperty("abortedChatId").GetString()!;
        var requests = await playground.Upstream.RequestsAsync();
        Assert.Contains(requests, r => IsRequest(r, "POST", "/api/v1/prediction/tokens") && (string?)r!["body"]!["chatId"] == chatId);
        Assert.Contains(requests, r => IsRequest(r, "PUT", $"/api/v1/chatmessage/abort/tokens/{chatId}"));
    }

    [Fact]
    public async Task A_reload_halfway_through_a_Predict_resumes_the_answer_which_completes_with_no_gap_and_no_duplicate()
    {
        var result = await PlaygroundBrowser.RunAsync("resume", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);

        // The page asked once; the reload neither asked again nor aborted.
        var chatId = result.GetProperty("chatId").GetString()!;
        var requests = await playground.Upstream.RequestsAsync();
        Assert.Single(requests, r => IsRequest(r, "POST", "/api/v1/prediction/tokens") && (string?)r!["body"]!["chatId"] == chatId);
        Assert.DoesNotContain(requests, r => IsRequest(r, "PUT", $"/api/v1/chatmessage/abort/tokens/{chatId}"));
    }

    [Fact]
    public async Task Page_shows_the_gateway_notices_when_the_upstream_session_drops_and_answers_again_once_it_is_back()
    {
        await PlaygroundBrowser.RunAsync("notices", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);
    }

    [Fact]
    public async Task Page_lists_the_chatflows_with_names_and_types_preselects_the_one_in_its_URL_and_still_takes_an_unlisted_id()
    {
        var result = await PlaygroundBrowser.RunAsync("chatflows", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);

        // Every chatflow TROM.AI lists, by name and type, in its order.
        var listed = result.GetProperty("listed").EnumerateArray().Select(c => $"{c.GetProperty("id")}: {c.GetProperty("text")}");
        var chatflows = (await playground.Upstream.Http.GetFromJsonAsync<JsonArray>("api/v1/chatflows"))!;
        Assert.Equal(chatflows.Select(c => $"{c!["id"]}: {c["name"]} · {c["type"]}"), listed);
        // A 1.x TROM.AI lists without a key, and the page, with none entered, sent none.
        var lists = (await playground.Upstream.RequestsAsync()).Where(r => IsRequest(r, "GET", "/api/v1/chatflows")).ToList();
        Assert.NotEmpty(lists);
        Assert.All(lists, r => Assert.Null(r!["headers"]!["authorization"]));
    }

    [Fact]
    public async Task In_a_browser_without_WebSockets_the_page_negotiates_and_streams_the_answer()
    {
        await PlaygroundBrowser.RunAsync("no-websockets", playground.Gateway.BaseUrl, playground.Upstream.BaseUrl);
    }

    [Fact]
    public async Task Page_and_its_SignalR_client_are_served_under_playground_and_every_other_path_still_reaches_TROM_AI()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = playground.Gateway.BaseUrl };

        using var bare = await http.GetAsync("playground");
        Assert.Equal(HttpStatusCode.Redirect, bare.StatusCode);
        Assert.Equal("/playground/", bare.Headers.Location?.OriginalString);
        using var chosen = await http.GetAsync("playground?chatflow=demo");
        Assert.Equal("/playground/?chatflow=demo", chosen.Headers.Location?.OriginalString);

        using var page = await http.GetAsync("playground/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<script src=\"signalr.min.js\"></script>", await page.Content.ReadAsStringAsync());

        using var client = await http.GetAsync("playground/signalr.min.js");
        Assert.Equal(HttpStatusCode.OK, client.StatusCode);
        Assert.Equal("text/javascript", client.Content.Headers.ContentType?.MediaType);
        Assert.Contains("HubConnectionBuilder", await client.Content.ReadAsStringAsync());

        // Under /playground/ the gateway answers alone; next to it, TROM.AI does (its web UI here).
        using var missing = await http.GetAsync("playground/missing.js");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var beside = await http.GetAsync("playground-elsewhere");
        Assert.Contains("<title>TROM.AI</title>", await beside.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Outside_Development_the_page_is_off_unless_enabled_and_playground_belongs_to_TROM_AI()
    {
        await using var gateway = await GatewayHost.StartAsync(playground.Upstream.BaseUrl); // environment "Testing", setting unset

        var answer = await gateway.Http.GetStringAsync("playground/");

        Assert.Contains("<title>TROM.AI</title>", answer);
    }

    [Fact]
    public async Task In_Development_the_page_is_on_without_a_setting()
    {
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["Gateway:Upstream:BaseUrl"] = playground.Upstream.BaseUrl.ToString(),
        });
        using var http = new HttpClient { BaseAddress = gateway.BaseUrl };

        var answer = await http.GetStringAsync("playground/");

        Assert.Contains("<title>TROM.AI Gateway · Playground</title>", answer);
    }

    [Fact]
    public async Task A_malformed_Enabled_setting_stops_start_up_naming_its_key()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = GatewayHost.Build(playground.Upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Playground:Enabled"] = "sometimes" });
            await app.StartAsync();
        });

        Assert.Contains("'Gateway:Playground:Enabled'", error.Message);
    }

    private static bool IsRequest(JsonNode? request, string method, string path) =>
        (string?)request?["method"] == method && (string?)request["path"] == path;
}
