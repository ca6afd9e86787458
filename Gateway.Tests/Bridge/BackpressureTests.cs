using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// A burst larger than <c>Relay:MaxBacklog</c> (an answer at full speed, or everything that piled up
/// while the gateway was stalled) waits for a client that reads: it is neither lost, nor a hang, nor
/// a reason to cut that client.
/// </summary>
public sealed class BackpressureTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_Predict_burst_larger_than_the_backlog_streams_every_token_and_the_next_Predict_runs()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Relay:MaxBacklog"] = "300",
        });
        await using var connection = new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build();
        await connection.StartAsync();

        var burst = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "tokens",
            new { question = "b", overrideConfig = new { count = 500 } }));
        var next = await Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "echo-question",
            new { question = "next" }));

        Assert.Equal(Enumerable.Range(0, 500).Select(i => $"b:{i}"), burst.Where(i => i.Event == "token").Select(i => i.Data.GetString()));
        Assert.Equal(["start", "end", "result"], burst.Where(i => i.Event != "token").Select(i => i.Event));
        Assert.Equal(["token", "end", "result"], next.Select(i => i.Event));
    }

    [Fact]
    public async Task After_the_gateway_stalls_mid_answer_a_client_that_reads_gets_every_event_and_stays_connected()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["Gateway:Upstream:BaseUrl"] = upstream.BaseUrl.ToString(),
            // Far below what piles up during the stall, so the burst after it must wait for the client.
            ["Gateway:Relay:MaxBacklog"] = "300",
        });
        using var http = new HttpClient { BaseAddress = gateway.BaseUrl };
        await using var connection = new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build();
        var events = new EventRecorder();
        connection.On<string>("token", token => events.Record("token", [token]));
        connection.On("end", () => events.Record("end", []));
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        // About 2.5 s of tokens; the gateway freezes (a long GC pause, a CPU-starved pod) for 2 s of them.
        var prediction = Predictions.PostAsync(http, "tokens", new { question = "s", socketIOClientId = id, overrideConfig = new { count = 10_000, rate = 4_000 } });
        await events.WaitForAsync(e => e.Count > 0, Timeout);
        await gateway.PauseAsync();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2)); // how long the gateway stays frozen: the fault itself, not a wait for an event
        }
        finally
        {
            await gateway.ResumeAsync();
        }

        var (status, _) = await prediction.WaitAsync(Timeout);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(Enumerable.Range(0, 10_000).Select(i => $"s:{i}"), events.Snapshot().Where(e => e.Name == "token").Select(e => e.Args[0].GetString()));
        Assert.Equal(HubConnectionState.Connected, connection.State);
        Assert.DoesNotContain("Closing connection", gateway.Output);
    }
}
