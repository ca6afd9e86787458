using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using SocketIOClient;
using SocketIOClient.Transport;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>Everything the gateway does not serve itself reaches TROM.AI unchanged, so it can take the upstream's place.</summary>
public sealed class ReverseProxyTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Method_path_query_headers_and_body_reach_the_upstream_unchanged()
    {
        var body = new byte[] { 0, 1, 2, 0xfe, 0xff, (byte)'x' };
        using var request = new HttpRequestMessage(HttpMethod.Put, "api/v1/echo/some/path?b=2&a=%20one&a=two")
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } },
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "tromai-key-123");
        request.Headers.Add("Origin", "https://app.example");
        request.Headers.Add("X-Custom", "kept");

        using var response = await bridge.Gateway.Http.SendAsync(request);

        var echo = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("PUT", echo.GetProperty("method").GetString());
        Assert.Equal("/api/v1/echo/some/path?b=2&a=%20one&a=two", echo.GetProperty("path").GetString());
        var headers = echo.GetProperty("headers");
        Assert.Equal("Bearer tromai-key-123", headers.GetProperty("authorization").GetString());
        Assert.Equal("https://app.example", headers.GetProperty("origin").GetString());
        Assert.Equal("kept", headers.GetProperty("x-custom").GetString());
        Assert.Equal(Convert.ToBase64String(body), echo.GetProperty("bodyBase64").GetString());
    }

    [Fact]
    public async Task Upstream_status_codes_and_error_bodies_pass_through()
    {
        using var teapot = await bridge.Gateway.Http.GetAsync("api/v1/echo/x?status=418");
        var (status, body) = await Predictions.PostAsync(bridge.Gateway.Http, "no-such-flow", new { question = "Hi" });

        Assert.Equal((HttpStatusCode)418, teapot.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("Chatflow no-such-flow not found", body.GetProperty("message").GetString());
        Assert.False(body.GetProperty("success").GetBoolean());
    }

    [Fact]
    public async Task The_TROM_AI_web_ui_and_its_assets_are_served_through_the_gateway()
    {
        var page = await bridge.Gateway.Http.GetStringAsync("/");
        using var script = await bridge.Gateway.Http.GetAsync("assets/app.js");

        Assert.Contains("<title>TROM.AI</title>", page);
        Assert.Equal("application/javascript", script.Content.Headers.ContentType?.MediaType);
        Assert.Contains("tromai ui", await script.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_server_sent_event_stream_reaches_the_client_event_by_event()
    {
        var gate = Guid.NewGuid().ToString("N");
        using var response = await bridge.Gateway.Http.GetAsync($"api/v1/sse?count=3&intervalMs=0&gate={gate}", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

        // The upstream holds the rest of the stream until released: this read completes only if the proxy did not buffer.
        var first = await ReadBlockAsync(reader).WaitAsync(Timeout);
        (await bridge.Upstream.Http.PostAsync($"test/release/{gate}", null)).EnsureSuccessStatusCode();
        var rest = await reader.ReadToEndAsync().WaitAsync(Timeout);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("message:\ndata:{\"event\":\"token\",\"data\":\"0\"}", first);
        Assert.EndsWith("data:{\"event\":\"end\",\"data\":\"[DONE]\"}\n\n", rest);
    }

    private static async Task<string> ReadBlockAsync(StreamReader reader)
    {
        var block = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line && line.Length > 0)
        {
            block.Append(block.Length > 0 ? "\n" : "").Append(line);
        }

        return block.ToString();
    }

    [Theory]
    [InlineData(TransportProtocol.WebSocket)]
    [InlineData(TransportProtocol.Polling)]
    public async Task A_plain_Socket_IO_client_keeps_working_through_the_gateway(TransportProtocol transport)
    {
        using var socket = new SocketIO(bridge.Gateway.BaseUrl, new SocketIOOptions { Transport = transport, Reconnection = false });
        var connected = new TaskCompletionSource();
        var tokens = new List<string>();
        var ended = new TaskCompletionSource();
        socket.OnConnected += (_, _) => connected.TrySetResult();
        socket.On("token", r => tokens.Add(r.GetValue<string>(0)));
        socket.On("end", _ => ended.TrySetResult());
        await socket.ConnectAsync();
        await connected.Task.WaitAsync(Timeout);

        var (status, _) = await Predictions.PostAsync(bridge.Gateway.Http, "echo-question", new { question = "direct", socketIOClientId = socket.Id });

        Assert.Equal(HttpStatusCode.OK, status);
        await ended.Task.WaitAsync(Timeout);
        Assert.Equal(["direct"], tokens);
        await socket.DisconnectAsync();
    }

    [Fact]
    public async Task An_unreachable_upstream_gets_502_with_a_json_message()
    {
        await using var gateway = await GatewayHost.StartAsync(new Uri("http://127.0.0.1:1/"));

        using var response = await gateway.Http.GetAsync("api/v1/chatflows");

        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(502, body.GetProperty("statusCode").GetInt32());
        Assert.Equal("TROM.AI is unreachable.", body.GetProperty("message").GetString()); // the cause, with its address, is logged only
    }
}
