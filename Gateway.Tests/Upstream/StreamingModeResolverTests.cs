using System.Net;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;
using TromAi.Gateway.Tests.Proxy;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// <c>Gateway:Upstream:Streaming</c> out of the box: the default, <c>auto</c>, finds each TROM.AI line's way of
/// streaming and says once what it chose and why; an explicit setting that does not fit the upstream fails with
/// the setting and the value to use, and no address, in the log and to the client.
/// </summary>
public sealed class StreamingModeResolverTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // The resolver logs its choice at Information; the tests' gateways log Warning and above otherwise.
    private static readonly Dictionary<string, string?> InformationFromTheResolver = new()
    {
        ["Logging:LogLevel:TromAi.Gateway.Upstream.StreamingModeResolver"] = "Information",
    };

    [Theory]
    [InlineData(TestUpstreamMode.SocketIO, "SocketIO", "opened an Engine.IO session")]
    [InlineData(TestUpstreamMode.Sse, "Sse", "with a web page (text/html), not Engine.IO")]
    [InlineData(TestUpstreamMode.TromAi3, "Sse", "with a web page (text/html), not Engine.IO")]
    public async Task By_default_auto_chooses_per_upstream_and_logs_its_choice_once_with_the_evidence(TestUpstreamMode line, string chosen, string evidence)
    {
        await using var upstream = await TestUpstream.StartAsync(line);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, InformationFromTheResolver); // no Streaming setting
        using var log = LogCapture.Attach(gateway.Services);

        for (var i = 0; i < 2; i++)
        {
            var events = new EventRecorder();
            await using var connection = HubClients.Create(gateway.HubUrl);
            events.Listen(connection, "token", "end");
            await connection.StartAsync().WaitAsync(Timeout);
            await Predictions.PostAsync(gateway.Http, "echo-question",
                new { question = "which line?", socketIOClientId = await connection.InvokeAsync<string>("GetSocketIOClientId") });
            await events.WaitForAsync(e => e.Any(x => x.Name == "end"), Timeout);
            Assert.Equal("which line?", events.Snapshot()[0].Args[0].GetString());
        }

        var choice = Assert.Single(log.Entries, entry => entry.Contains("Gateway:Upstream:Streaming=auto chose", StringComparison.Ordinal));
        Assert.StartsWith("Information", choice, StringComparison.Ordinal);
        Assert.Contains($"chose {chosen}: ", choice, StringComparison.Ordinal);
        Assert.Contains(evidence, choice, StringComparison.Ordinal);
        Assert.DoesNotContain(upstream.BaseUrl.Authority, choice, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explicit_socketio_against_an_SSE_only_TROM_AI_fails_with_the_setting_and_the_value_to_use()
    {
        await using var upstream = await TestUpstream.StartAsync(TestUpstreamMode.Sse);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "socketio" });
        using var log = LogCapture.Attach(gateway.Services);
        await using var connection = HubClients.Create(gateway.HubUrl);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => connection.StartAsync().WaitAsync(Timeout));

        Assert.Contains("TROM.AI Gateway: TROM.AI has no Socket.IO", error.Message, StringComparison.Ordinal);
        Assert.Contains("answered HTTP 200 where a WebSocket upgrade (101) was expected", error.Message, StringComparison.Ordinal);
        Assert.Contains("Set Gateway:Upstream:Streaming to sse", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(upstream.BaseUrl.Authority, error.Message, StringComparison.Ordinal);
        Assert.Equal(HubConnectionState.Disconnected, connection.State);
        Assert.Contains(log.Entries, entry => entry.StartsWith("Warning", StringComparison.Ordinal)
            && entry.Contains("Set Gateway:Upstream:Streaming to sse", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Explicit_sse_against_a_Socket_IO_only_TROM_AI_fails_predictions_with_the_setting_and_the_value_to_use()
    {
        await using var upstream = await TestUpstream.StartAsync(TestUpstreamMode.SocketIO);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Upstream:Streaming"] = "sse" });
        using var log = LogCapture.Attach(gateway.Services);
        await using var connection = await HubClients.StartAsync(gateway.HubUrl);
        var id = await connection.InvokeAsync<string>("GetSocketIOClientId");

        var predict = await Assert.ThrowsAsync<HubException>(() =>
            Predictions.ReadAllAsync(connection.StreamAsync<Predictions.Item>("Predict", "echo-question", new { question = "hub" })));
        var (status, body) = await Predictions.PostAsync(gateway.Http, "echo-question", new { question = "rest", socketIOClientId = id });
        var (plainStatus, plain) = await Predictions.PostAsync(gateway.Http, "not-streamable", new { question = "plain", socketIOClientId = id });

        const string Advice = "Set Gateway:Upstream:Streaming to socketio";
        Assert.Contains("TROM.AI does not stream over Server-Sent Events", predict.Message, StringComparison.Ordinal);
        Assert.Contains(Advice, predict.Message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Contains(Advice, body.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(upstream.BaseUrl.Authority, predict.Message + body.GetRawText(), StringComparison.Ordinal);
        Assert.Contains(log.Entries, entry => entry.StartsWith("Warning", StringComparison.Ordinal) && entry.Contains(Advice, StringComparison.Ordinal));
        // A flow that cannot stream answers JSON in every era: that is no mismatch.
        Assert.Equal(HttpStatusCode.OK, plainStatus);
        Assert.Equal("plain", plain.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Auto_against_an_unreachable_TROM_AI_tells_the_client_without_the_address_and_logs_it()
    {
        var closedPort = new Uri("http://127.0.0.1:1/");
        await using var gateway = await GatewayHost.StartAsync(closedPort);
        using var log = LogCapture.Attach(gateway.Services);
        await using var connection = HubClients.Create(gateway.HubUrl);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => connection.StartAsync().WaitAsync(Timeout));

        Assert.Contains("TROM.AI Gateway: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", error.Message, StringComparison.Ordinal);
        Assert.Contains(log.Entries, entry => entry.Contains("Could not tell how TROM.AI streams yet", StringComparison.Ordinal)
            && entry.Contains("127.0.0.1:1", StringComparison.Ordinal));
        Assert.DoesNotContain(log.Entries, entry => entry.Contains("=auto chose", StringComparison.Ordinal)); // nothing was learned
    }
}
