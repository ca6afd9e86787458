using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// A connection holds an upstream session only while its client is there: one that falls silent is
/// closed after <c>Relay:IdleTimeout</c>, and one that sends something the gateway does not know is
/// not left hanging.
/// </summary>
public sealed class IdleConnectionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_client_that_completes_the_handshake_and_falls_silent_is_closed_and_its_upstream_session_freed()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Relay:IdleTimeout"] = "00:00:01",
            ["Gateway:Upstream:WarmSockets"] = "0", // the upstream's sockets are then the sessions' own
        });
        await using var silent = await RawHubClient.OpenAsync(gateway.HubUrl);

        // The handshake is answered only once the connection's upstream session is open (it may be gone
        // again by the time anyone counts, a second later on a busy machine).
        Assert.Equal("{}", await silent.HandshakeAsync(Timeout));
        await silent.ReceiveUntilClosedAsync(Timeout); // it never pings: only the server's own pings come, then the end

        await upstream.WaitForSocketCountAsync(0, Timeout);
    }

    [Fact]
    public async Task A_client_that_keeps_pinging_stays_connected_past_the_idle_timeout()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Relay:IdleTimeout"] = "00:00:03",
        });
        await using var client = await RawHubClient.OpenAsync(gateway.HubUrl);
        Assert.Equal("{}", await client.HandshakeAsync(Timeout));

        // Over two idle timeouts, a ping every 100 ms: the client's own cadence (SignalR clients ping
        // every 15 s against 30 s), thirty times more often than needed so that a loaded machine cannot
        // make a gap of 3 s.
        for (var ping = 0; ping < 70; ping++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100));
            await client.SendAsync("""{"type":6}""");
        }

        await client.SendAsync("""{"type":1,"invocationId":"1","target":"GetSocketIOClientId","arguments":[]}""");
        Assert.StartsWith("gw-", await ResultOfAsync(client, "1"));
    }

    [Fact]
    public async Task A_MessagePack_client_that_only_pings_stays_connected_past_the_idle_timeout()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Relay:IdleTimeout"] = "00:00:02",
        });
        await using var client = HubClients.Create(gateway.HubUrl, hub => hub.AddMessagePackProtocol());
        client.KeepAliveInterval = TimeSpan.FromMilliseconds(100); // twenty pings per idle timeout, for a loaded machine
        var closed = ClosedOf(client);
        await client.StartAsync();

        // Three idle timeouts with nothing but the client's own pings, which MessagePack frames by length, not by a separator.
        var first = await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(6)));
        Assert.NotSame(closed, first);
        Assert.StartsWith("gw-", await client.InvokeAsync<string>("GetSocketIOClientId"));
    }

    [Fact]
    public async Task A_MessagePack_client_that_falls_silent_is_closed_and_its_upstream_session_freed()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Relay:IdleTimeout"] = "00:00:01",
            ["Gateway:Upstream:WarmSockets"] = "0", // the upstream's sockets are then the sessions' own
        });
        await using var client = HubClients.Create(gateway.HubUrl, hub => hub.AddMessagePackProtocol());
        client.KeepAliveInterval = TimeSpan.FromMinutes(10); // it will not ping within the test
        client.ServerTimeout = TimeSpan.FromMinutes(20);
        var closed = ClosedOf(client);
        await client.StartAsync();

        await closed.WaitAsync(Timeout);
        await upstream.WaitForSocketCountAsync(0, Timeout);
    }

    private static Task ClosedOf(HubConnection client)
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        return closed.Task;
    }

    [Fact]
    public async Task A_message_of_an_unknown_type_is_skipped_and_what_follows_it_is_answered()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        await using var client = await RawHubClient.OpenAsync(gateway.HubUrl);
        Assert.Equal("{}", await client.HandshakeAsync(Timeout));

        // One frame, as a newer client might send it: a message type this server does not know, then an invocation.
        await client.SendAsync("""{"type":99,"something":"new"}""", """{"type":1,"invocationId":"1","target":"GetSocketIOClientId","arguments":[]}""");

        Assert.StartsWith("gw-", await ResultOfAsync(client, "1"));
    }

    /// <summary>The result of the completion for <paramref name="invocationId"/>, skipping the server's pings.</summary>
    private static async Task<string?> ResultOfAsync(RawHubClient client, string invocationId)
    {
        using var deadline = new CancellationTokenSource(Timeout); // for all of them: the server's pings keep coming
        while (await client.ReceiveAsync(deadline.Token) is { } message)
        {
            using var json = JsonDocument.Parse(message);
            if (json.RootElement.GetProperty("type").GetInt32() == 3 && json.RootElement.GetProperty("invocationId").GetString() == invocationId)
            {
                return json.RootElement.TryGetProperty("result", out var result) ? result.GetString() : throw new InvalidOperationException(message);
            }
        }

        throw new InvalidOperationException("The server closed the connection before answering.");
    }
}
