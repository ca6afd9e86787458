using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Proxy;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>
/// Memory is bounded by configuration, not by clients: prediction bodies held in memory, all requests
/// together, never pass <c>Gateway:Proxy:MaxBufferedBodyBytes</c>; a body that would gets 503 with
/// <c>Retry-After</c>, and every other arrives intact.
/// </summary>
public sealed class BodyBudgetTests(BodyBudgetTests.GatewayFixture fixture) : IClassFixture<BodyBudgetTests.GatewayFixture>
{
    private const int MB = 1024 * 1024;
    private const long Budget = 8 * MB;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public sealed class GatewayFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public GatewayHost Gateway { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Upstream = await TestUpstream.StartAsync();
            Gateway = await GatewayHost.StartAsync(Upstream.BaseUrl, new Dictionary<string, string?>
            {
                ["Gateway:Proxy:MaxPredictionBodyBytes"] = (4 * MB).ToString(),
                ["Gateway:Proxy:MaxBufferedBodyBytes"] = Budget.ToString(),
            });
        }

        public async Task DisposeAsync()
        {
            await Gateway.DisposeAsync();
            await Upstream.DisposeAsync();
        }
    }

    private GatewayHost Gateway => fixture.Gateway;

    private BodyBudget BodyBudget => Gateway.Services.GetRequiredService<BodyBudget>();

    [Fact]
    public async Task A_body_past_the_budget_gets_503_while_bodies_within_it_and_files_after_the_id_go_through()
    {
        var (connection, _, id) = await HubClients.ConnectAndListenAsync(Gateway.HubUrl);
        await using var _ = connection;
        await WaitUntilAsync(() => BodyBudget.InFlight == 0);

        // Two JSON bodies of 3.5 MB each, declared and then held mid-upload: 7 of the 8 MB are taken.
        var first = new HeldBody(JsonBody("held-1", new string('a', 3584 * 1024 - 64), id));
        var second = new HeldBody(JsonBody("held-2", new string('b', 3584 * 1024 - 64), id));
        var firstAnswer = PostAsync(Json(first));
        var secondAnswer = PostAsync(Json(second));
        await WaitUntilAsync(() => BodyBudget.InFlight >= 7 * MB);

        // A third one does not fit; a multipart body whose id comes before its file needs almost nothing of the budget.
        using var refused = await PostAsync(Json(new ByteArrayContent(JsonBody("refused", new string('c', 3 * MB), id))));
        var file = RandomNumberGenerator.GetBytes(3 * MB);
        using var streamed = await PostAsync(Form(("question", "file after id"), ("socketIOClientId", id), ("files", file)));
        using var fileFirst = await PostAsync(Form(("question", "file before id"), ("files", file), ("socketIOClientId", id)));

        first.Release();
        second.Release();
        using var firstDone = await firstAnswer;
        using var secondDone = await secondAnswer;

        await AssertRefusedAsync(refused);
        await AssertRefusedAsync(fileFirst);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal(Sha256(file), (string?)(await ForwardedAsync("file after id"))["files"]![0]!["sha256hex"]);
        Assert.Equal(HttpStatusCode.OK, firstDone.StatusCode);
        Assert.Equal(HttpStatusCode.OK, secondDone.StatusCode);
        Assert.Equal("held-1", (await firstDone.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("text").GetString());
        Assert.Equal(new string('b', 3584 * 1024 - 64), (string?)(await ForwardedAsync("held-2"))["body"]!["overrideConfig"]!["text"]);
        Assert.InRange(BodyBudget.Peak, 7 * MB, Budget);
        await WaitUntilAsync(() => BodyBudget.InFlight == 0); // every buffer went back
    }

    [Fact]
    public async Task Many_large_predictions_at_once_are_each_answered_intact_or_refused_and_never_hold_more_than_the_budget()
    {
        var (connection, _, id) = await HubClients.ConnectAndListenAsync(Gateway.HubUrl);
        await using var _ = connection;
        var files = Enumerable.Range(0, 12).Select(_ => RandomNumberGenerator.GetBytes(2 * MB)).ToArray();

        var answers = await Task.WhenAll(files.Select((file, i) => i % 2 == 0
            ? PostAsync(Json(new ByteArrayContent(JsonBody($"burst-{i}", Convert.ToHexString(file, 0, MB), id))))
            : PostAsync(Form(("question", $"burst-{i}"), ("files", file), ("socketIOClientId", id)))));

        for (var i = 0; i < answers.Length; i++)
        {
            using var answer = answers[i];
            if (answer.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                await AssertRefusedAsync(answer);
                continue;
            }

            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var forwarded = await ForwardedAsync($"burst-{i}");
            if (i % 2 == 0)
            {
                Assert.Equal(Convert.ToHexString(files[i], 0, MB), (string?)forwarded["body"]!["overrideConfig"]!["text"]);
                Assert.NotEqual(id, (string?)forwarded["body"]!["socketIOClientId"]);
            }
            else
            {
                Assert.Equal(Sha256(files[i]), (string?)forwarded["files"]![0]!["sha256hex"]);
            }
        }

        Assert.Contains(answers, a => a.StatusCode == HttpStatusCode.OK);
        Assert.InRange(BodyBudget.Peak, 1, Budget);
        await WaitUntilAsync(() => BodyBudget.InFlight == 0);
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(503, body.GetProperty("statusCode").GetInt32());
        Assert.False(body.GetProperty("success").GetBoolean());
        Assert.Contains("Gateway:Proxy:MaxBufferedBodyBytes", body.GetProperty("message").GetString());
    }

    private Task<HttpResponseMessage> PostAsync(HttpContent content) => Gateway.Http.PostAsync("api/v1/prediction/echo-question", content);

    /// <summary>What TROM.AI received for the prediction asking <paramref name="question"/>: <c>body</c>, and <c>files</c> with their digests.</summary>
    private async Task<JsonNode> ForwardedAsync(string question) =>
        (await fixture.Upstream.RequestsAsync()).Last(r => (string?)r!["body"]?["question"] == question)!;

    private static byte[] JsonBody(string question, string text, string id) =>
        Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { question, socketIOClientId = id, overrideConfig = new { text } }));

    private static HttpContent Json(HttpContent content)
    {
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static MultipartFormDataContent Form(params (string Name, object Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, value) in fields)
        {
            if (value is byte[] bytes)
            {
                form.Add(new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } }, name, "upload.bin");
            }
            else
            {
                form.Add(new StringContent((string)value), name);
            }
        }

        return form;
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Waits for the gateway's own accounting, which has no event to wait on, re-reading it briefly spaced.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while (!condition())
        {
            await Task.Delay(10, deadline.Token);
        }
    }

    /// <summary>A body with a declared length whose first megabyte goes out at once and the rest only after <see cref="Release"/>.</summary>
    private sealed class HeldBody(byte[] bytes) : HttpContent
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _released.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            await stream.WriteAsync(bytes.AsMemory(0, MB));
            await stream.FlushAsync();
            await _released.Task.WaitAsync(Timeout);
            await stream.WriteAsync(bytes.AsMemory(MB));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes.Length;
            return true;
        }
    }
}
