using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>
/// With an SSE-era TROM.AI, a prediction naming a hub connection is asked with <c>streaming: true</c>,
/// whatever <c>streaming</c> the client sent around it: TROM.AI's own parsers (JSON.parse, multer) decide.
/// </summary>
public sealed class SseRewriteTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private TestUpstream _upstream = null!;
    private GatewayHost _gateway = null!;

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
    public async Task A_JSON_prediction_that_said_streaming_false_before_its_id_still_streams_to_the_connection()
    {
        var (connection, events, id) = await ConnectAsync();
        await using var _ = connection;
        var body = $$"""{"streaming":false,"socketIOClientId":"{{id}}","question":"json"}""";

        using var response = await _gateway.Http.PostAsync("api/v1/prediction/echo-question", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("json", events.Snapshot().First(e => e.Name == "token").Args[0].GetString());
    }

    [Fact]
    public async Task A_multipart_prediction_with_streaming_fields_around_its_id_streams_and_its_file_arrives()
    {
        var (connection, events, id) = await ConnectAsync();
        await using var _ = connection;
        using var form = new MultipartFormDataContent
        {
            { new StringContent("false"), "streaming" },
            { new StringContent("multipart"), "question" },
            { new StringContent(id), "socketIOClientId" },
            { new StringContent("false"), "streaming" },
            { new ByteArrayContent(new byte[300_000]) { Headers = { ContentType = new MediaTypeHeaderValue("application/pdf") } }, "files", "big.pdf" },
        };

        using var response = await _gateway.Http.PostAsync("api/v1/prediction/echo-question", form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("multipart", events.Snapshot().First(e => e.Name == "token").Args[0].GetString());
        var forwarded = (await _upstream.RequestsAsync()).Last(r => (string?)r!["body"]?["question"] == "multipart")!;
        Assert.Equal("true", (string?)forwarded["body"]!["streaming"]);
        Assert.Equal(300_000, (int)forwarded["files"]![0]!["size"]!);
    }

    [Fact]
    public async Task A_multipart_prediction_that_goes_wrong_after_its_id_gets_400_not_a_TROM_AI_error()
    {
        var (connection, _, id) = await ConnectAsync();
        await using var _ = connection;
        var body = $"--b\r\nContent-Disposition: form-data; name=\"socketIOClientId\"\r\n\r\n{id}\r\n"
            + "--b\r\nContent-Disposition: form-data; name=\"question\"\r\n\r\nunfinished";
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");

        using var response = await _gateway.Http.PostAsync("api/v1/prediction/echo-question", content);

        var answer = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not valid multipart/form-data", answer);
    }

    private async Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAsync()
    {
        var events = new EventRecorder();
        var connection = HubClients.Create(_gateway.HubUrl);
        events.Listen(connection, "token", "end", "metadata");
        await connection.StartAsync(); // the upstream has no Socket.IO endpoint: nothing to wait for
        return (connection, events, await connection.InvokeAsync<string>("GetSocketIOClientId"));
    }
}
