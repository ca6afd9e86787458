using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>A prediction names a hub connection; the upstream sees that connection's socket, and nothing else changes.</summary>
public sealed class SocketIdRewriteTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Json_prediction_with_a_hub_connection_id_reaches_the_upstream_with_its_socket_id_and_every_other_field_intact()
    {
        var (connection, events, id) = await ConnectAsync();
        await using var _ = connection;
        var body = """{"question":"é \"quoted\"","socketIOClientId":"ID","overrideConfig":{"temperature":0.25,"nested":[1,null,true]},"history":[{"role":"userMessage","content":"x"}],"chatId":"chat-1"}""".Replace("ID", id);

        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("é \"quoted\"", events.Snapshot()[0].Args[0].GetString());
        var forwarded = (JsonObject)(await LastForwardedAsync("echo-question"))["body"]!;
        var upstreamId = (string)forwarded["socketIOClientId"]!;
        Assert.NotEqual(id, upstreamId);
        Assert.Contains(upstreamId, await bridge.Upstream.Http.GetStringAsync("test/sockets"));
        forwarded.Remove("socketIOClientId");
        var sent = JsonNode.Parse(body)!.AsObject();
        sent.Remove("socketIOClientId");
        Assert.True(JsonNode.DeepEquals(sent, forwarded), forwarded.ToJsonString());
    }

    [Fact]
    public async Task Multipart_prediction_with_a_file_and_a_hub_connection_id_is_rewritten_and_streams()
    {
        var (connection, events, id) = await ConnectAsync();
        await using var _ = connection;
        var file = RandomNumberGenerator.GetBytes(200_000);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("about this file"), "question" },
            { new StringContent(id), "socketIOClientId" },
            { new ByteArrayContent(file) { Headers = { ContentType = new MediaTypeHeaderValue("application/pdf") } }, "files", "report.pdf" },
        };

        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question", form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("about this file", events.Snapshot()[0].Args[0].GetString());
        var forwarded = await LastForwardedAsync("echo-question");
        Assert.NotEqual(id, (string)forwarded["body"]!["socketIOClientId"]!);
        var upload = forwarded["files"]![0]!;
        Assert.Equal("report.pdf", (string)upload["originalname"]!);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file)), (string)upload["sha256hex"]!);
    }

    [Fact]
    public async Task An_id_that_is_not_a_hub_connection_passes_unchanged()
    {
        var (status, _) = await Predictions.PostAsync(bridge.Gateway.Http, "echo-question", new { question = "Hi", socketIOClientId = "plain-socket-io-id" });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("plain-socket-io-id", (string)(await LastForwardedAsync("echo-question"))["body"]!["socketIOClientId"]!);
    }

    [Fact]
    public async Task Malformed_json_gets_400_with_a_clear_message_and_never_reaches_the_upstream()
    {
        await bridge.Upstream.Http.DeleteAsync("test/requests");

        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question",
            new StringContent("""{"question": "Hi", "socketIOClientId": """, Encoding.UTF8, "application/json"));

        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("The prediction body is not valid JSON", body.GetProperty("message").GetString());
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }

    [Fact]
    public async Task A_body_over_the_configured_limit_gets_413_and_never_reaches_the_upstream()
    {
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Proxy:MaxPredictionBodyBytes"] = "1024",
        });
        await bridge.Upstream.Http.DeleteAsync("test/requests");

        var (status, body) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = new string('x', 2000) });
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($$"""{"question":"{{new string('y', 5000)}}"}""")));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/prediction/echo-question") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using var chunkedResponse = await gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("Gateway:Proxy:MaxPredictionBodyBytes", body.GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunkedResponse.StatusCode);
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }

    private Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAsync() =>
        HubClients.ConnectAndListenAsync(bridge.Gateway.HubUrl, "token", "end");

    private async Task<JsonNode> LastForwardedAsync(string chatflowId) =>
        (await bridge.Upstream.RequestsAsync()).Last(r => (string?)r!["path"] == $"/api/v1/prediction/{chatflowId}")!;
}
