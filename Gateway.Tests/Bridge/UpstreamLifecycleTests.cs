using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>Upstream sessions open and close with their hub connections, and survive the upstream going away.</summary>
public sealed class UpstreamLifecycleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // For tests that count the upstream's sockets: each is then a session's own.
    private static readonly Dictionary<string, string?> NoWarmSockets = new() { ["Gateway:Upstream:WarmSockets"] = "0" };

    [Fact]
    public async Task A_thousand_connect_disconnect_cycles_leave_no_upstream_socket_behind_but_the_warm_ones()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        var warm = new UpstreamOptions().WarmSockets; // the default: most of these connects take a warm socket

        // Ten clients at a time, a hundred rounds: churn as a busy front end makes it.
        for (var round = 0; round < 100; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 10).Select(async _ =>
            {
                var connection = await HubClients.StartAsync(gateway.HubUrl);
                await connection.DisposeAsync();
            }));
        }

        // Once the pool is full again (no connect takes from it now), the upstream holds those sockets and nothing else.
        var pool = gateway.Services.GetRequiredService<WarmUpstreamSockets>();
        await Poll.UntilAsync(() => pool.Count == warm, Timeout, () => $"{warm} warm sockets (the pool holds {pool.Count})");
        await upstream.WaitForSocketCountAsync(warm, Timeout);
        await using var survivor = HubClients.Create(gateway.HubUrl);
        var events = new EventRecorder();
        events.Listen(survivor, "token", "end");
        await survivor.StartAsync();
        await Predictions.PostAsync(gateway.Http, "echo-question",
            new { question = "still here", socketIOClientId = await survivor.InvokeAsync<string>("GetSocketIOClientId") });
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("still here", events.Snapshot()[0].Args[0].GetString());
    }

    [Fact]
    public async Task Start_fails_with_a_clear_error_when_the_upstream_cannot_be_reached()
    {
        var closedPort = new Uri("http://127.0.0.1:1/");
        await using var gateway = await GatewayHost.StartAsync(closedPort, new Dictionary<string, string?>
        {
            ["Gateway:Upstream:ConnectTimeout"] = "00:00:02",
        });
        await using var connection = HubClients.Create(gateway.HubUrl);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => connection.StartAsync().WaitAsync(Timeout));

        Assert.Contains("TROM.AI Gateway: TROM.AI did not open a Socket.IO session: it is unreachable.", error.Message);
        Assert.DoesNotContain("127.0.0.1", error.Message); // never an internal address
        Assert.Equal(HubConnectionState.Disconnected, connection.State);
    }

    [Fact]
    public async Task Start_fails_within_the_connect_timeout_when_the_upstream_accepts_but_never_answers()
    {
        using var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start(); // accepts TCP (the kernel completes the handshake) but never speaks HTTP
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        await using var gateway = await GatewayHost.StartAsync(new Uri($"http://127.0.0.1:{port}/"), new Dictionary<string, string?>
        {
            ["Gateway:Upstream:ConnectTimeout"] = "00:00:01",
        });
        await using var connection = HubClients.Create(gateway.HubUrl);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => connection.StartAsync().WaitAsync(Timeout));

        Assert.Contains("no answer within 1 s", error.Message);
    }

    [Fact]
    public async Task Upstream_restart_mid_stream_is_announced_and_the_next_prediction_streams()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end", "gateway:upstream-lost", "gateway:upstream-restored");
        await using var _ = connection;

        var streaming = Predictions.PostAsync(gateway.Http, "tokens",
            new { question = "long", socketIOClientId = id, overrideConfig = new { count = 100_000, rate = 200 } });
        await events.WaitForAsync(e => e.Any(x => x.Name == "token"), Timeout);
        await upstream.RestartAsync(TimeSpan.FromMilliseconds(500));

        var (status, body) = await streaming;
        Assert.Equal(HttpStatusCode.BadGateway, status); // the upstream cut the POST: the client is told, not left hanging
        Assert.Contains("TROM.AI", body.GetProperty("message").GetString());
        await events.WaitForAsync(e => e.Any(x => x.Name == "gateway:upstream-restored"), Timeout);
        var lost = events.Snapshot().Single(e => e.Name == "gateway:upstream-lost");
        Assert.False(string.IsNullOrEmpty(lost.Args[0].GetProperty("reason").GetString()));

        var before = events.Snapshot().Count;
        var (after, answer) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "again", socketIOClientId = id });
        Assert.Equal(HttpStatusCode.OK, after);
        await events.WaitForAsync(e => e.Skip(before).Any(x => x.Name == "end"), Timeout);
        Assert.Equal("again", events.Snapshot().Skip(before).First(e => e.Name == "token").Args[0].GetString());
        Assert.Equal(1, await upstream.SocketCountAsync());
    }

    [Fact]
    public async Task A_socket_dropped_by_the_upstream_reconnects_under_the_same_hub_id()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, NoWarmSockets);
        var (connection, events, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end", "gateway:upstream-lost", "gateway:upstream-restored");
        await using var _ = connection;

        Assert.Equal(1, await upstream.DropSocketsAsync());

        await events.WaitForAsync(e => e.Any(x => x.Name == "gateway:upstream-restored"), Timeout);
        Assert.Equal(["gateway:upstream-lost", "gateway:upstream-restored"], events.Snapshot().Select(e => e.Name));
        Assert.True(events.Snapshot()[1].Args[0].GetProperty("attempts").GetInt32() >= 1);
        await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "back", socketIOClientId = id });
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal("back", events.Snapshot().Single(e => e.Name == "token").Args[0].GetString());
    }

    [Fact]
    public async Task A_prediction_while_the_upstream_session_reconnects_gets_503_not_a_silent_stream()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            // Long enough that the POST below lands while the session is still down.
            ["Gateway:Upstream:ReconnectInitialDelay"] = "00:00:30",
            ["Gateway:Upstream:ReconnectMaxDelay"] = "00:00:30",
        });
        await using var connection = HubClients.Create(gateway.HubUrl);
        var events = new EventRecorder();
        events.Listen(connection, "gateway:upstream-lost");
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        await upstream.DropSocketsAsync();
        await events.WaitForAsync(e => e.Count == 1, Timeout);
        var (status, body) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "now", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("reconnecting", body.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_frame_the_gateway_cannot_read_ends_the_upstream_socket_and_the_session_comes_back()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        await using var connection = new HubConnectionBuilder().WithUrl(gateway.HubUrl).Build();
        var events = new EventRecorder();
        connection.On<System.Text.Json.JsonElement>("gateway:upstream-lost", notice => events.Record("gateway:upstream-lost", [notice]));
        connection.On<System.Text.Json.JsonElement>("gateway:upstream-restored", notice => events.Record("gateway:upstream-restored", [notice]));
        connection.On<string>("token", token => events.Record("token", [token]));
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        (await upstream.Http.PostAsync("test/malformed-frame", content: null)).EnsureSuccessStatusCode();
        await events.WaitForEventAsync("gateway:upstream-restored", Timeout);
        await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "read again", socketIOClientId = id });

        await events.WaitForEventAsync("token", Timeout);
        Assert.Equal(["gateway:upstream-lost", "gateway:upstream-restored", "token"], events.Snapshot().Select(e => e.Name));
        Assert.Equal("read again", events.Snapshot()[^1].Args[0].GetString());
    }
}
