using System.Net;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// <c>Gateway:Proxy:ActivityTimeout</c> means one thing on every path, the proxy's meaning: how long TROM.AI
/// may stay silent. An answer that streams steadily runs as long as it needs; a stream that falls silent ends,
/// with a message that names the setting, instead of hanging.
/// </summary>
public sealed class ActivityTimeoutTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private TestUpstream _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });
        _gateway = await GatewayHost.StartAsync(_upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Upstream:Streaming"] = "sse",
            ["Gateway:Proxy:ActivityTimeout"] = "00:00:03", // room for a loaded machine's first request
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task An_answer_that_streams_longer_than_the_timeout_but_never_falls_silent_is_not_cut()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);

        // 75 tokens at 15/s: five seconds in all, never more than a fifteenth of one without a byte.
        var items = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens",
            new { question = "steady", overrideConfig = new { count = 75, rate = 15 } })).WaitAsync(Timeout);

        Assert.Equal(75, items.Count(i => i.Event == "token"));
        Assert.Equal("result", items[^1].Event);
    }

    [Fact]
    public async Task A_Predict_whose_stream_falls_silent_ends_with_a_HubException_naming_the_setting()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);

        var error = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                new { question = "stalls", overrideConfig = new { count = 1_000, rate = 50 } }))
            {
                if (item.Event == "token")
                {
                    await _upstream.StallAsync(TimeSpan.FromSeconds(20)); // TROM.AI goes quiet mid-answer
                }
            }
        }).WaitAsync(Timeout);

        Assert.Contains("TROM.AI sent nothing for 00:00:03 (Gateway:Proxy:ActivityTimeout)", error.Message);
    }

    [Fact]
    public async Task A_REST_prediction_whose_stream_falls_silent_answers_502_naming_the_setting()
    {
        await using var connection = await HubClients.StartAsync(_gateway.HubUrl);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        var firstToken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.On<object>("token", _ => firstToken.TrySetResult());

        var post = Predictions.PostAsync(_gateway.Http, "tokens",
            new { question = "stalls", socketIOClientId = id, overrideConfig = new { count = 1_000, rate = 50 } });
        await firstToken.Task.WaitAsync(Timeout);
        await _upstream.StallAsync(TimeSpan.FromSeconds(20));
        var (status, body) = await post.WaitAsync(Timeout);

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Contains("TROM.AI sent nothing for 00:00:03 (Gateway:Proxy:ActivityTimeout)", body.GetProperty("message").GetString());
    }
}
