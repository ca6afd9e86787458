using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>One call streams a prediction: hub <c>Predict</c>, cancel = abort, and hub <c>Abort</c>.</summary>
public sealed class PredictTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Predict_streams_every_upstream_event_in_order_and_ends_with_the_answer()
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        var tokensToHandlers = 0;
        connection.On<string>("token", _ => Interlocked.Increment(ref tokensToHandlers));

        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "all-events", new { question = "Hi" }));

        Assert.Equal("result", items[^1].Event);
        Assert.Equal("Hello", items[^1].Data.GetProperty("text").GetString());
        Assert.Equal(
            AllEvents.Expected.Select(e => $"{e.Name} {AsData(e.ArgsJson)}"),
            items.SkipLast(1).Select(i => $"{i.Event} {AllEvents.Canonical(i.Data.GetRawText())}"));
        Assert.Equal(0, tokensToHandlers); // the stream carries them, not the connection's handlers
    }

    /// <summary>A Predict item's data: the one argument, null for none, the array of them for several.</summary>
    private static string AsData(string argsJson)
    {
        using var args = JsonDocument.Parse(argsJson);
        return args.RootElement.GetArrayLength() switch
        {
            0 => "null",
            1 => AllEvents.Canonical(args.RootElement[0].GetRawText()),
            _ => argsJson,
        };
    }

    [Fact]
    public async Task Cancelling_Predict_aborts_the_prediction_upstream_and_ends_the_stream()
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        using var cancel = new CancellationTokenSource();
        var received = 0;

        var reading = Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                new { question = "stop me", overrideConfig = new { count = 100_000, rate = 100 } }, cancel.Token))
            {
                if (item.Event == "token" && ++received == 3)
                {
                    await cancel.CancelAsync();
                }
            }
        });
        await reading.WaitAsync(Timeout);

        var post = (await bridge.Upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/tokens")!;
        var chatId = (string)post["body"]!["chatId"]!;
        await bridge.Upstream.WaitForRequestAsync($"/api/v1/chatmessage/abort/tokens/{chatId}", Timeout);
        // Tokens already in the client's buffer when it cancels still come out; the stream then ends.
        Assert.InRange(received, 3, 1_000);
    }

    [Fact]
    public async Task An_upstream_error_ends_Predict_with_a_HubException_carrying_status_and_message()
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);

        var failed = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "error", new { question = "Hi" })));
        var missing = await Assert.ThrowsAsync<HubException>(() => Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "nope", new { question = "Hi" })));

        Assert.Contains("TROM.AI answered 500 (InternalServerError): Flow failed: boom", failed.Message);
        Assert.Contains("TROM.AI answered 404 (NotFound): Chatflow nope not found", missing.Message);
    }

    [Fact]
    public async Task Two_concurrent_Predict_calls_on_one_connection_run_one_after_the_other_without_mixing()
    {
        await using var connection = await HubClients.StartAsync(bridge.Gateway.HubUrl);

        var first = Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "one", overrideConfig = new { count = 300, rate = 1000 } }));
        var second = Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens", new { question = "two", overrideConfig = new { count = 300, rate = 1000 } }));
        var results = await Task.WhenAll(first, second).WaitAsync(Timeout);

        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"one:{i}"), results[0].Where(i => i.Event == "token").Select(i => i.Data.GetString()));
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"two:{i}"), results[1].Where(i => i.Event == "token").Select(i => i.Data.GetString()));
        Assert.All(results, r => Assert.Equal("result", r[^1].Event));
    }

    [Fact]
    public async Task Abort_stops_a_prediction_started_over_REST()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(bridge.Gateway.HubUrl);
        events.Listen(connection, "token", "abort", "end");
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        var chatId = Guid.NewGuid().ToString();

        var rest = Predictions.PostAsync(bridge.Gateway.Http, "tokens",
            new { question = "rest", socketIOClientId = id, chatId, overrideConfig = new { count = 100_000, rate = 100 } });
        await events.WaitForAsync(e => e.Count >= 2, Timeout);
        await connection.InvokeAsync("Abort", "tokens", chatId);

        var (status, answer) = await rest.WaitAsync(Timeout);
        await events.WaitForEventAsync("abort", Timeout);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("rest:0rest:1", answer.GetProperty("text").GetString());
        Assert.DoesNotContain(events.Snapshot(), e => e.Name == "end");
    }
}
