using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>The TROM.AI streaming guide, step by step, with SignalR instead of Socket.IO.</summary>
public sealed class PredictionHubTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task DotNet_client_receives_every_upstream_event_with_its_name_arguments_and_order()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(bridge.Gateway.HubUrl);
        events.Listen(connection, Predictions.AllEventNames);
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var (status, answer) = await Predictions.PostAsync(bridge.Gateway.Http, "all-events", new { question = "Hi", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Hello", answer.GetProperty("text").GetString());
        await events.WaitForAsync(received => received.Count >= AllEvents.Expected.Count, Timeout);
        Assert.Equal(
            AllEvents.Expected.Select(e => $"{e.Name} {e.ArgsJson}"),
            events.Snapshot().Select(e => $"{e.Name} {AllEvents.Canonical(JsonSerializer.Serialize(e.Args))}"));
    }

    [Fact]
    public async Task JavaScript_client_following_the_streaming_guide_receives_every_event_in_order()
    {
        var start = new ProcessStartInfo("node", ["signalr-client.mjs", bridge.Gateway.BaseUrl.ToString().TrimEnd('/'), "all-events", "Hi"])
        {
            WorkingDirectory = TestUpstream.Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        await node.WaitForExitAsync().WaitAsync(Timeout);
        Assert.True(node.ExitCode == 0, await stderr);

        using var result = JsonDocument.Parse(await stdout);
        var root = result.RootElement;
        Assert.Equal(200, root.GetProperty("status").GetInt32());
        Assert.Equal("Hello", root.GetProperty("response").GetProperty("text").GetString());
        // The id to send is the gateway's own, not the SignalR connection id (see Security/StreamAddressingTests).
        Assert.StartsWith("gw-", root.GetProperty("id").GetString());
        Assert.NotEqual(root.GetProperty("connectionId").GetString(), root.GetProperty("id").GetString());
        Assert.Equal(
            AllEvents.Expected.Select(e => $"{e.Name} {e.ArgsJson}"),
            root.GetProperty("events").EnumerateArray().Select(e => $"{e.GetProperty("event").GetString()} {AllEvents.Canonical(e.GetProperty("args").GetRawText())}"));
    }

    [Fact]
    public async Task Start_completes_only_once_the_upstream_session_is_connected()
    {
        // Without warm sockets: each connection then opens its own, and start() must wait for it. Its own
        // upstream, so that no other gateway's sockets come and go while it counts.
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:WarmSockets"] = "0" });

        await using var connection = await HubClients.StartAsync(gateway.HubUrl);

        // No wait here: the upstream must already hold the socket when start() returns.
        Assert.Equal(1, await upstream.SocketCountAsync());
    }

    [Fact]
    public async Task Twenty_concurrent_connections_each_receive_exactly_their_own_5000_tokens_in_order()
    {
        const int clients = 20, tokens = 5000;
        var sessions = await Task.WhenAll(Enumerable.Range(0, clients).Select(async i =>
        {
            var events = new EventRecorder();
            var connection = HubClients.Create(bridge.Gateway.HubUrl);
            events.Listen(connection, "start", "token", "end");
            await connection.StartAsync();
            return (Question: $"client{i}", Connection: connection, Events: events, Id: await connection.InvokeAsync<string>("GetSocketIOClientId"));
        }));

        try
        {
            var answers = await Task.WhenAll(sessions.Select(s => Predictions.PostAsync(bridge.Gateway.Http, "tokens",
                new { question = s.Question, socketIOClientId = s.Id, overrideConfig = new { count = tokens } })));

            Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
            foreach (var session in sessions)
            {
                await session.Events.WaitForAsync(received => received.Any(e => e.Name == "end"), Timeout);
                var received = session.Events.Snapshot();
                Assert.Equal($"{session.Question}:0", received[0].Args[0].GetString());
                Assert.Equal("start", received[0].Name);
                Assert.Equal(
                    Enumerable.Range(0, tokens).Select(t => $"{session.Question}:{t}"),
                    received.Where(e => e.Name == "token").Select(e => e.Args[0].GetString()));
                Assert.Equal("end", received[^1].Name);
                Assert.Equal(tokens + 2, received.Count);
            }
        }
        finally
        {
            await Task.WhenAll(sessions.Select(s => s.Connection.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Hub_connection_ids_are_not_upstream_socket_ids_and_no_event_reveals_one()
    {
        var events = new EventRecorder();
        await using var connection = HubClients.Create(bridge.Gateway.HubUrl);
        events.Listen(connection, "echo", "token", "end");
        await connection.StartAsync();
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var (status, answer) = await Predictions.PostAsync(bridge.Gateway.Http, "all-events", new { question = "Hi", socketIOClientId = id });

        Assert.Equal(HttpStatusCode.OK, status);
        var upstreamIds = (await bridge.Upstream.Http.GetStringAsync("test/sockets"));
        Assert.DoesNotContain(id, upstreamIds);
        var forwarded = (await bridge.Upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/all-events")!;
        var upstreamId = (string)forwarded["body"]!["socketIOClientId"]!;
        Assert.Contains(upstreamId, upstreamIds);
        Assert.DoesNotContain(upstreamId, answer.GetRawText());
    }
}
