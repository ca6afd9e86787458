using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// However a <c>Predict</c> ends (TROM.AI too slow, the client cancelling, or leaving and not coming
/// back within <c>Gateway:Streams:DetachedTimeout</c>), the flow is aborted upstream, none of its late events reaches the connection's handlers, and the connection
/// goes on working.
/// </summary>
public sealed class PredictEndingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_Predict_that_TROM_AI_does_not_answer_in_time_fails_with_the_setting_and_is_aborted_without_late_events()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Proxy:ActivityTimeout"] = "00:00:01",
        });
        await using var connection = new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build();
        var handlers = new EventRecorder();
        connection.On<string>("token", token => handlers.Record("token", [token]));
        connection.On("abort", () => handlers.Record("abort", []));
        connection.On("end", () => handlers.Record("end", []));
        await connection.StartAsync();
        var chatId = Guid.NewGuid().ToString();

        // 20 s of tokens: far more than the 1 s TROM.AI may take to answer.
        var streamed = new List<Predictions.Item>();
        var failure = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                new { question = "slow", chatId, overrideConfig = new { count = 1_000, rate = 50 } }).WithCancellation(new CancellationTokenSource(Timeout).Token))
            {
                streamed.Add(item);
            }
        });

        Assert.Contains("TROM.AI did not answer the prediction within 00:00:01 (Gateway:Proxy:ActivityTimeout)", failure.Message);
        Assert.Contains(await upstream.RequestsAsync(), r => (string?)r!["path"] == $"/api/v1/chatmessage/abort/tokens/{chatId}");
        Assert.Contains(streamed, i => i.Event == "abort"); // the flow's own acknowledgement went into the stream

        // Events on one socket keep their order: once the next answer's token is in, any late event of
        // the aborted flow would have arrived before it.
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "after", socketIOClientId = id });
        await handlers.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(["token after", "end "], handlers.Snapshot().Select(e => $"{e.Name} {(e.Args.Count > 0 ? e.Args[0].GetString() : "")}"));
    }

    [Fact]
    public async Task Clients_that_cancel_mid_Predict_have_their_flows_aborted_and_those_that_drop_once_the_detached_timeout_passed()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            // A dropped client's prediction runs on for a resume (ResumeTests), this long at most.
            ["Gateway:Streams:DetachedTimeout"] = "00:00:02",
            ["Gateway:Upstream:WarmSockets"] = "0", // the upstream's sockets are then the sessions' own
        });
        await using var cancelling = new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build();
        var handlers = new EventRecorder();
        cancelling.On<string>("token", token => handlers.Record("token", [token]));
        await cancelling.StartAsync();
        var dropping = new List<HubConnection>();
        for (var i = 0; i < 10; i++)
        {
            dropping.Add(new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build());
            await dropping[^1].StartAsync();
        }

        var chatIds = new List<string>();
        var streams = new List<Task>();
        using var cancel = new CancellationTokenSource();
        foreach (var connection in dropping.Prepend(cancelling))
        {
            var chatId = Guid.NewGuid().ToString();
            chatIds.Add(chatId);
            streams.Add(ReadUntilFirstTokenAsync(connection, chatId, ReferenceEquals(connection, cancelling) ? cancel.Token : default));
        }

        await Task.WhenAll(streams.Select(s => s.WaitAsync(Timeout)));
        await cancel.CancelAsync();
        await Task.WhenAll(dropping.Select(c => c.DisposeAsync().AsTask()));

        foreach (var chatId in chatIds)
        {
            await upstream.WaitForRequestAsync($"/api/v1/chatmessage/abort/tokens/{chatId}", Timeout);
        }

        await upstream.WaitForSocketCountAsync(1, Timeout); // the dropped connections' sessions are closed
        var next = await Predictions.ReadAllAsync(cancelling.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "next" }));
        Assert.Equal(["token", "end", "result"], next.Select(i => i.Event));
        Assert.Empty(handlers.Snapshot()); // the cancelled flow's late tokens went nowhere
    }

    /// <summary>Starts a long Predict and completes once its first token is in, leaving the stream open (or cancelled by <paramref name="cancellationToken"/>).</summary>
    private static Task ReadUntilFirstTokenAsync(HubConnection connection, string chatId, CancellationToken cancellationToken)
    {
        var firstToken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var item in connection.StreamAsync<Predictions.Item>("Predict", "tokens",
                    new { question = "long", chatId, overrideConfig = new { count = 100_000, rate = 200 } }, cancellationToken))
                {
                    if (item.Event == "token")
                    {
                        firstToken.TrySetResult();
                    }
                }
            }
            catch (Exception e)
            {
                firstToken.TrySetException(e); // ignored once the first token is in: cancelling or dropping ends the stream so
            }
        }, CancellationToken.None);
        return firstToken.Task;
    }
}
