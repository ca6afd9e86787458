using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>
/// What a prediction request may look like: TROM.AI's own parser decides what it accepts, and the gateway
/// refuses, with TROM.AI's error shape and before any upstream call, only what it must.
/// </summary>
public sealed class PredictionBodyTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("/api/v1/prediction/a/b")]
    [InlineData("/api/v1/prediction/a%2Fb")]
    [InlineData("/api/v1/prediction/..%2F..%2Fchatflows")]
    [InlineData("/api/v1/prediction/a%5Cb")]
    [InlineData("/api/v1/prediction/echo-question%01")]
    [InlineData("/api/v1/prediction/")]
    [InlineData("/api/v1/internal-prediction/a/b")]
    public async Task A_chatflow_id_that_is_not_one_path_segment_gets_400_and_reaches_nothing(string target)
    {
        await bridge.Upstream.Http.DeleteAsync("test/requests");

        var (status, body) = await PostRawAsync(target, """{"question":"Hi"}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(400, body.GetProperty("statusCode").GetInt32());
        Assert.False(body.GetProperty("success").GetBoolean());
        Assert.Contains("one path segment", body.GetProperty("message").GetString());
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }

    [Theory]
    [InlineData("/api/v1/prediction/x/../echo-question")]
    [InlineData("/api/v1/prediction/x/%2E%2E/echo-question")]
    [InlineData("/api/v1/prediction/./echo-question")]
    public async Task Kestrel_resolves_dot_segments_before_the_rewrite_so_the_id_it_sees_is_one_segment(string target)
    {
        var (status, body) = await PostRawAsync(target, """{"question":"dots"}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("dots", body.GetProperty("text").GetString());
        Assert.Equal("/api/v1/prediction/echo-question", (string?)(await bridge.Upstream.RequestsAsync()).Last(r => (string?)r!["body"]?["question"] == "dots")!["path"]);
    }

    [Fact]
    public async Task A_JSON_body_with_a_UTF8_byte_order_mark_is_rewritten_and_reaches_TROM_AI()
    {
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(bridge.Gateway.HubUrl, "token", "end");
        await using var _ = connection;
        var json = Encoding.UTF8.GetBytes($$"""{"question":"with a BOM","socketIOClientId":"{{id}}"}""");

        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question", Json([0xEF, 0xBB, 0xBF, .. json]));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("with a BOM", events.Snapshot()[0].Args[0].GetString());
    }

    [Fact]
    public async Task A_JSON_body_nested_deeper_than_64_is_rewritten_and_reaches_TROM_AI_intact()
    {
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(bridge.Gateway.HubUrl, "token", "end");
        await using var _ = connection;
        var deep = string.Concat(Enumerable.Repeat("""{"a":[""", 200)) + "1" + string.Concat(Enumerable.Repeat("]}", 200));
        var body = $$"""{"question":"deep","overrideConfig":{"nested":{{deep}}},"socketIOClientId":"{{id}}"}""";

        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question", Json(Encoding.UTF8.GetBytes(body)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("deep", events.Snapshot()[0].Args[0].GetString());
        // The request log holds JSON deeper than the test client's own default limit: read it with a higher one, then clear it.
        var log = JsonNode.Parse(await bridge.Upstream.Http.GetStringAsync("test/requests"), documentOptions: new JsonDocumentOptions { MaxDepth = 1024 })!;
        await bridge.Upstream.Http.DeleteAsync("test/requests");
        var forwarded = log.AsArray().Last(r => (string?)r!["body"]?["question"] == "deep")!["body"]!;
        Assert.Equal(deep, forwarded["overrideConfig"]!["nested"]!.ToJsonString());
        Assert.NotEqual(id, (string?)forwarded["socketIOClientId"]);
    }

    [Theory]
    [InlineData("""{"question":"Hi"} trailing""")]
    [InlineData("""{"question":"Hi",}""")]
    [InlineData("\uFEFF{\"question\":")]
    public async Task Malformed_JSON_still_gets_400_and_reaches_nothing(string text)
    {
        // Marked by its query, not by clearing the log: an earlier test's request may still be arriving.
        var path = $"/api/v1/prediction/echo-question?marker={Guid.NewGuid():N}";

        using var response = await bridge.Gateway.Http.PostAsync(path, Json(Encoding.UTF8.GetBytes(text)));

        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("The prediction body is not valid JSON", body.GetProperty("message").GetString());
        Assert.DoesNotContain(await bridge.Upstream.RequestsAsync(), r => (string?)r!["path"] == path);
    }

    public static TheoryData<string, string> OversizedMultipart => new()
    {
        { "seventeen headers", Section(string.Concat(Enumerable.Range(0, 16).Select(i => $"X-Extra-{i}: v\r\n"))) },
        { "a 17 KB header", Section($"X-Big: {new string('h', 17 * 1024)}\r\n") },
    };

    [Theory]
    [MemberData(nameof(OversizedMultipart))]
    public async Task Multipart_section_headers_past_the_reader_s_limits_get_400_and_are_not_logged(string what, string body)
    {
        using var log = LogCapture.Attach(bridge.Gateway.Services);
        await bridge.Upstream.Http.DeleteAsync("test/requests");

        var (status, answer) = await PostMultipartAsync("b0undary", body.Replace("BOUNDARY", "b0undary"));

        Assert.True(status == HttpStatusCode.BadRequest, what);
        Assert.Equal(400, answer.GetProperty("statusCode").GetInt32());
        Assert.False(answer.GetProperty("success").GetBoolean());
        Assert.StartsWith("The prediction body is not valid multipart/form-data", answer.GetProperty("message").GetString());
        Assert.DoesNotContain(log.Entries, entry => entry.Contains("hhhhhhhh", StringComparison.Ordinal) || entry.Contains("X-Extra", StringComparison.Ordinal));
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }

    [Fact]
    public async Task A_multipart_boundary_longer_than_ASP_NET_Core_accepts_gets_400_and_is_not_logged()
    {
        using var log = LogCapture.Attach(bridge.Gateway.Services);
        await bridge.Upstream.Http.DeleteAsync("test/requests");
        var boundary = "B" + new string('q', 5000);

        var (status, answer) = await PostMultipartAsync(boundary, Section("").Replace("BOUNDARY", boundary));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(400, answer.GetProperty("statusCode").GetInt32());
        Assert.Contains("boundary", answer.GetProperty("message").GetString());
        Assert.DoesNotContain(log.Entries, entry => entry.Contains("qqqqqqqq", StringComparison.Ordinal));
        Assert.Empty(await bridge.Upstream.RequestsAsync());
    }

    [Fact]
    public async Task A_multipart_body_that_goes_wrong_after_its_id_while_streaming_on_still_gets_400()
    {
        using var log = LogCapture.Attach(bridge.Gateway.Services);
        var body = "--b0undary\r\nContent-Disposition: form-data; name=\"socketIOClientId\"\r\n\r\nsome-socket\r\n"
            + Section(string.Concat(Enumerable.Range(0, 16).Select(i => $"X-Extra-{i}: v\r\n"))).Replace("BOUNDARY", "b0undary");

        var (status, answer) = await PostMultipartAsync("b0undary", body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.StartsWith("The prediction body is not valid multipart/form-data", answer.GetProperty("message").GetString());
        Assert.DoesNotContain(log.Entries, entry => entry.Contains("X-Extra", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_chunked_multipart_body_that_grows_past_the_limit_after_its_id_gets_413()
    {
        await using var gateway = await GatewayHost.StartAsync(bridge.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Proxy:MaxPredictionBodyBytes"] = (1024 * 1024).ToString(),
        });
        using var form = new MultipartFormDataContent
        {
            { new StringContent("too big"), "question" },
            { new StringContent("some-socket"), "socketIOClientId" },
            { new ByteArrayContent(new byte[2 * 1024 * 1024]), "files", "big.bin" },
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/prediction/echo-question") { Content = new StreamContent(await form.ReadAsStreamAsync()) };
        request.Content.Headers.ContentType = form.Headers.ContentType;
        request.Headers.TransferEncodingChunked = true;

        using var response = await gateway.Http.SendAsync(request);

        var answer = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("Gateway:Proxy:MaxPredictionBodyBytes", answer.GetProperty("message").GetString());
    }

    /// <summary>A form with a question and a section carrying <paramref name="extraHeaders"/>; BOUNDARY stands for the boundary.</summary>
    private static string Section(string extraHeaders) =>
        "--BOUNDARY\r\nContent-Disposition: form-data; name=\"question\"\r\n\r\nHi\r\n"
        + $"--BOUNDARY\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n{extraHeaders}Content-Type: text/plain\r\n\r\nfile\r\n"
        + "--BOUNDARY--\r\n";

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostMultipartAsync(string boundary, string body)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={boundary}");
        using var response = await bridge.Gateway.Http.PostAsync("api/v1/prediction/echo-question", content);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Sends <paramref name="target"/> as written: HttpClient would otherwise resolve dot segments and escapes itself.</summary>
    private async Task<(HttpStatusCode Status, JsonElement Body)> PostRawAsync(string target, string json)
    {
        var uri = new Uri(bridge.Gateway.BaseUrl.GetLeftPart(UriPartial.Authority) + target, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
        using var response = await bridge.Gateway.Http.PostAsync(uri, Json(Encoding.UTF8.GetBytes(json)));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static ByteArrayContent Json(byte[] bytes) => new(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
}
