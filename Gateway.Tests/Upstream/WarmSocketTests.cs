using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using TromAi.Gateway.Tests.Telemetry;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// A new hub connection takes an upstream socket the gateway opened before it asked (Gateway:Upstream:WarmSockets),
/// streams on it like on its own, and never gets one TROM.AI has closed.
/// </summary>
public sealed class WarmSocketTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const int Warm = 2;
    private static readonly Dictionary<string, string?> Settings = new() { ["Gateway:Upstream:WarmSockets"] = Warm.ToString() };

    [Fact]
    public async Task A_new_connection_streams_on_a_socket_opened_before_it_connected()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings);
        var (first, firstEvents, firstId) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end");
        await using var _ = first;
        // The first connection opened its own socket, and set the pool filling.
        await WaitForFullPoolAsync(gateway);
        await upstream.WaitForSocketCountAsync(1 + Warm, Timeout);
        var openBefore = await SocketIdsAsync(upstream);
        Assert.Equal(Warm, (await PrometheusScrape.GetAsync(gateway.Http))["tromai_gateway_upstream_warm_sockets"]);

        var (second, events, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end");
        await using var __ = second;
        var (status, _) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "warm", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status);
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(["token", "end"], events.Snapshot().Select(e => e.Name));
        Assert.Equal("warm", events.Snapshot()[0].Args[0].GetString());
        var socket = await ForwardedSocketIdAsync(upstream);
        Assert.Contains(socket, openBefore);

        // The first connection's socket is not that one: each warm socket serves one connection.
        await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "own", socketIOClientId = firstId });
        await firstEvents.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.NotEqual(socket, await ForwardedSocketIdAsync(upstream));
        Assert.Equal("own", firstEvents.Snapshot()[0].Args[0].GetString());

        // The take topped the pool up again: two sessions and two warm sockets.
        await WaitForFullPoolAsync(gateway);
        await upstream.WaitForSocketCountAsync(2 + Warm, Timeout);
    }

    [Fact]
    public async Task Warm_sockets_the_upstream_closes_leave_the_pool_and_the_next_connection_streams_at_once()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings);
        var (first, firstEvents, _) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "gateway:upstream-restored");
        await using var _1 = first;
        await WaitForFullPoolAsync(gateway);

        Assert.Equal(1 + Warm, await upstream.DropSocketsAsync());
        var pool = gateway.Services.GetRequiredService<WarmUpstreamSockets>();
        await Poll.UntilAsync(() => pool.Count == 0, Timeout, () => $"the closed warm sockets to leave the pool (it holds {pool.Count})");
        await firstEvents.WaitForEventAsync("gateway:upstream-restored", Timeout);

        var (second, events, id) = await HubClients.ConnectAndListenAsync(gateway.HubUrl, "token", "end", "gateway:upstream-lost");
        await using var _2 = second;
        var (status, _) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "fresh", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status); // not 503: its session is not reconnecting from a dead socket
        await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
        Assert.Equal(["token", "end"], events.Snapshot().Select(e => e.Name));
        await WaitForFullPoolAsync(gateway);
        await upstream.WaitForSocketCountAsync(2 + Warm, Timeout);
    }

    [Fact]
    public async Task Stopping_the_gateway_closes_its_warm_sockets()
    {
        await using var upstream = await TestUpstream.StartAsync();
        var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, Settings);
        await using (var connection = await HubClients.StartAsync(gateway.HubUrl))
        {
            await WaitForFullPoolAsync(gateway);
        }

        await upstream.WaitForSocketCountAsync(Warm, Timeout);
        await gateway.DisposeAsync();

        await upstream.WaitForSocketCountAsync(0, Timeout);
    }

    [Fact]
    public async Task An_upstream_that_closes_every_socket_once_open_gets_at_most_one_pool_s_worth_of_opens_per_take()
    {
        await using var server = await ScriptedSocketIOServer.StartAsync();
        var options = Options.Create(new GatewayOptions { Upstream = new UpstreamOptions { BaseUrl = server.BaseUrl, WarmSockets = 3 } });
        var metrics = new GatewayMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());
        await using var pool = new WarmUpstreamSockets(options, new UpstreamDestinations(options), metrics, NullLogger<WarmUpstreamSockets>.Instance);
        using var stop = new CancellationTokenSource();
        var opened = 0;
        var serving = Task.Run(async () =>
        {
            // Every socket is closed as soon as it is open, however many come.
            while (!stop.IsCancellationRequested)
            {
                var peer = await server.AcceptAsync(stop.Token);
                Interlocked.Increment(ref opened);
                await peer.HandshakeAsync(sid: $"short-lived-{opened}");
                peer.End();
            }
        });

        Assert.Null(pool.TryTake()); // nothing opened yet: this take starts the top-up

        // Unbounded, the top-up would go on opening for as long as the sockets keep closing.
        await Poll.UntilAsync(() => !pool.IsFilling, Timeout, () => $"the top-up to stop ({Volatile.Read(ref opened)} opened so far)");
        await Poll.UntilAsync(() => pool.Count == 0, Timeout, () => $"the closed sockets to leave the pool (it holds {pool.Count})");
        Assert.InRange(Volatile.Read(ref opened), 1, 3);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);
    }

    private static Task WaitForFullPoolAsync(GatewayHost gateway)
    {
        var pool = gateway.Services.GetRequiredService<WarmUpstreamSockets>();
        return Poll.UntilAsync(() => pool.Count == Warm, Timeout, () => $"{Warm} warm sockets (the pool holds {pool.Count})");
    }

    private static async Task<string[]> SocketIdsAsync(TestUpstream upstream)
    {
        var sockets = await upstream.Http.GetFromJsonAsync<JsonElement>("test/sockets");
        return [.. sockets.GetProperty("ids").EnumerateArray().Select(id => id.GetString()!)];
    }

    private static async Task<string> ForwardedSocketIdAsync(TestUpstream upstream) =>
        (string)(await upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/echo-question")!["body"]!["socketIOClientId"]!;
}
