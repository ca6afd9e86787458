using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// One rule on every path to TROM.AI (proxy, SSE relay, <c>Predict</c>, abort): TROM.AI gets the caller's
/// own TROM.AI key when it brings one, else <c>Gateway:Upstream:ApiKey</c>; never a gateway credential.
/// </summary>
public sealed class UpstreamHeaderPolicyTests
{
    private const string GatewayKey = "gateway-key-0123456789";
    private const string ConfiguredKey = "configured-tromai-key";
    private const string ClientsKey = "clients-own-chatflow-key";

    [Fact]
    public async Task With_authentication_on_the_SSE_relay_sends_the_configured_key_and_never_the_gateway_credential()
    {
        await using var upstream = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings(auth: true, streaming: "sse"));
        await using var connection = await ConnectAsync(gateway, accessToken: GatewayKey);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        using var response = await SendAsync(gateway, "api/v1/prediction/echo-question", new { question = "q", socketIOClientId = id },
            ("Authorization", $"Bearer {GatewayKey}"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headers = await UpstreamHeadersAsync(upstream, "/api/v1/prediction/echo-question");
        Assert.Equal($"Bearer {ConfiguredKey}", (string?)headers["authorization"]);
    }

    [Theory]
    [InlineData(false, "socketio")]
    [InlineData(false, "sse")]
    [InlineData(true, "socketio")]
    [InlineData(true, "sse")]
    public async Task A_callers_own_TROM_AI_key_reaches_TROM_AI_on_every_path(bool auth, string streaming)
    {
        var environment = streaming == "sse" ? new Dictionary<string, string> { ["STREAMING"] = "sse" } : null;
        await using var upstream = await TestUpstream.StartAsync(environment: environment);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings(auth, streaming));
        // Gateway authentication off: the client's Authorization is its TROM.AI key, as TROM.AI's own clients send it.
        // On: Authorization is the gateway's, and the TROM.AI key travels in X-TromAi-Key.
        (string, string)[] clientKey = auth
            ? [("X-Api-Key", GatewayKey), ("X-TromAi-Key", ClientsKey)]
            : [("Authorization", $"Bearer {ClientsKey}")];
        await using var connection = await ConnectAsync(gateway, accessToken: auth ? GatewayKey : ClientsKey,
            headers: auth ? new Dictionary<string, string> { ["X-TromAi-Key"] = ClientsKey } : null);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        using var rest = await SendAsync(gateway, "api/v1/prediction/echo-question", new { question = "rest", socketIOClientId = id }, clientKey);
        var predicted = await connection.StreamAsync<JsonElement>("Predict", "echo-question", new { question = "hub" }).ToListAsync();
        await connection.InvokeAsync("Abort", "tokens", "some-chat");
        using var proxied = await SendAsync(gateway, "api/v1/echo/x", null, clientKey);
        using var anonymous = await SendAsync(gateway, "api/v1/echo/y", null, auth ? [("X-Api-Key", GatewayKey)] : []);

        Assert.Equal(HttpStatusCode.OK, rest.StatusCode);
        Assert.Equal("result", predicted[^1].GetProperty("event").GetString());
        var requests = await upstream.RequestsAsync();
        var predictions = requests.Where(r => (string?)r!["path"] == "/api/v1/prediction/echo-question").ToList();
        Assert.Equal(2, predictions.Count);
        Assert.All(predictions, r => Assert.Equal($"Bearer {ClientsKey}", (string?)r!["headers"]!["authorization"]));
        var abort = requests.Single(r => (string?)r!["path"] == "/api/v1/chatmessage/abort/tokens/some-chat")!;
        Assert.Equal($"Bearer {ClientsKey}", (string?)abort["headers"]!["authorization"]);
        Assert.Equal($"Bearer {ClientsKey}", (await proxied.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("headers").GetProperty("authorization").GetString());
        // A caller without a key of its own: the configured one.
        Assert.Equal($"Bearer {ConfiguredKey}", (await anonymous.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("headers").GetProperty("authorization").GetString());
        Assert.All(requests, r => Assert.Null(r!["headers"]!["x-api-key"]));
        Assert.All(requests, r => Assert.Null(r!["headers"]!["x-tromai-key"]));
    }

    [Theory]
    [InlineData("socketio")]
    [InlineData("sse")]
    public async Task A_client_that_cannot_send_the_header_hands_its_key_to_the_connection_and_Predict_and_Abort_send_it(string streaming)
    {
        var environment = streaming == "sse" ? new Dictionary<string, string> { ["STREAMING"] = "sse" } : null;
        await using var upstream = await TestUpstream.StartAsync(environment: environment);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings(auth: true, streaming));
        await using var connection = await ConnectAsync(gateway, accessToken: GatewayKey); // a browser: the gateway's key only

        var refused = await Assert.ThrowsAsync<Microsoft.AspNetCore.SignalR.HubException>(() => connection.InvokeAsync("UseTromAiKey", "key\r\nX-Injected: 1"));
        await connection.InvokeAsync("UseTromAiKey", ClientsKey);
        var predicted = await connection.StreamAsync<JsonElement>("Predict", "echo-question", new { question = "hub" }).ToListAsync();
        await connection.InvokeAsync("Abort", "tokens", "some-chat");
        await connection.InvokeAsync("UseTromAiKey", (string?)null);
        await connection.StreamAsync<JsonElement>("Predict", "echo-question", new { question = "back" }).ToListAsync();

        Assert.Contains("visible ASCII characters", refused.Message);
        Assert.Equal("result", predicted[^1].GetProperty("event").GetString());
        var requests = await upstream.RequestsAsync();
        var predictions = requests.Where(r => (string?)r!["path"] == "/api/v1/prediction/echo-question").ToList();
        Assert.Equal([$"Bearer {ClientsKey}", $"Bearer {ConfiguredKey}"], predictions.Select(r => (string?)r!["headers"]!["authorization"]));
        var abort = requests.Single(r => (string?)r!["path"] == "/api/v1/chatmessage/abort/tokens/some-chat")!;
        Assert.Equal($"Bearer {ClientsKey}", (string?)abort["headers"]!["authorization"]);
        Assert.All(requests, r => Assert.Null(r!["headers"]!["x-injected"]));
    }

    private static Dictionary<string, string?> Settings(bool auth, string streaming)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Upstream:ApiKey"] = ConfiguredKey,
            ["Gateway:Upstream:Streaming"] = streaming,
        };
        if (auth)
        {
            settings["Gateway:Auth:ApiKeys:0"] = GatewayKey;
        }

        return settings;
    }

    private static async Task<HubConnection> ConnectAsync(GatewayHost gateway, string accessToken, Dictionary<string, string>? headers = null)
    {
        var connection = new HubConnectionBuilder()
            .WithUrl(gateway.HubUrl, options =>
            {
                options.AccessTokenProvider = () => Task.FromResult<string?>(accessToken);
                foreach (var (name, value) in headers ?? [])
                {
                    options.Headers[name] = value;
                }
            })
            .Build();
        await connection.StartAsync();
        return connection;
    }

    private static async Task<HttpResponseMessage> SendAsync(GatewayHost gateway, string path, object? body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(body is null ? HttpMethod.Get : HttpMethod.Post, path)
        {
            Content = body is null ? null : JsonContent.Create(body),
        };
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await gateway.Http.SendAsync(request);
    }

    private static async Task<System.Text.Json.Nodes.JsonNode> UpstreamHeadersAsync(TestUpstream upstream, string path) =>
        (await upstream.RequestsAsync()).Last(r => (string?)r!["path"] == path)!["headers"]!;
}
