using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Health;

/// <summary>SIGTERM to a real gateway process, as Kubernetes sends it.</summary>
public sealed class GracefulDrainTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task On_SIGTERM_it_turns_unready_refuses_new_connections_lets_predictions_finish_then_closes_with_a_notice()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["Gateway:Upstream:BaseUrl"] = upstream.BaseUrl.ToString(),
            ["Gateway:Drain:Timeout"] = "00:00:20",
        });
        using var http = new HttpClient { BaseAddress = gateway.BaseUrl };
        var events = new EventRecorder();
        await using var connection = HubClients.Create(gateway.HubUrl);
        events.Listen(connection, "token", "end", "gateway:draining");
        var closed = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.Closed += error => { closed.TrySetResult(error); return Task.CompletedTask; };
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("readyz")).StatusCode);

        var prediction = Predictions.PostAsync(http, "tokens", new { question = "t", socketIOClientId = id, overrideConfig = new { count = 200, rate = 100 } });
        await events.WaitForAsync(e => e.Any(x => x.Name == "token"), Timeout);
        await gateway.TerminateAsync();

        await WaitForReadinessAsync(http, HttpStatusCode.ServiceUnavailable);
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => HubClients.StartAsync(gateway.HubUrl).WaitAsync(Timeout));
        Assert.Contains("shutting down", refused.Message);

        var (status, answer) = await prediction.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, status); // the running prediction finished
        Assert.Equal(string.Concat(Enumerable.Range(0, 200).Select(i => $"t:{i}")), answer.GetProperty("text").GetString());
        await events.WaitForEventAsync("gateway:draining", Timeout);
        Assert.Null(await closed.Task.WaitAsync(Timeout)); // a clean close, not an error
        var received = events.Snapshot();
        Assert.Equal(200, received.Count(e => e.Name == "token"));
        Assert.Equal(["end", "gateway:draining"], received.TakeLast(2).Select(e => e.Name)); // after the last event
        Assert.Equal(0, await gateway.WaitForExitAsync(Timeout));
    }

    [Fact]
    public async Task On_SIGTERM_a_connection_gets_the_notice_then_SignalRs_close_allowing_reconnect_then_a_normal_WebSocket_close()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["Gateway:Upstream:BaseUrl"] = upstream.BaseUrl.ToString(),
        });
        await using var client = await RawHubClient.OpenAsync(gateway.HubUrl);
        Assert.Equal("{}", await client.HandshakeAsync(Timeout));

        await gateway.TerminateAsync();
        var messages = await client.ReceiveUntilClosedAsync(Timeout);

        Assert.Equal(2, messages.Count);
        using var notice = JsonDocument.Parse(messages[0]);
        Assert.Equal(1, notice.RootElement.GetProperty("type").GetInt32()); // an invocation of the client's handler
        Assert.Equal("gateway:draining", notice.RootElement.GetProperty("target").GetString());
        using var close = JsonDocument.Parse(messages[1]);
        Assert.Equal(7, close.RootElement.GetProperty("type").GetInt32());
        Assert.True(close.RootElement.GetProperty("allowReconnect").GetBoolean());
        Assert.False(close.RootElement.TryGetProperty("error", out _));
        Assert.Contains(client.CloseStatus, new WebSocketCloseStatus?[] { WebSocketCloseStatus.NormalClosure, WebSocketCloseStatus.EndpointUnavailable });
        Assert.Equal(0, await gateway.WaitForExitAsync(Timeout));
    }

    private static async Task WaitForReadinessAsync(HttpClient http, HttpStatusCode expected)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while ((await http.GetAsync("readyz", deadline.Token)).StatusCode != expected)
        {
            // The signal is handled on the process's own schedule: re-ask until it shows.
            await Task.Delay(20, deadline.Token);
        }
    }
}
