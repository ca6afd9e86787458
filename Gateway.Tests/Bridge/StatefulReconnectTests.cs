using System.Diagnostics;
using System.Net;
using System.Text.Json;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>A network blip mid-stream loses nothing: SignalR's stateful reconnect, on the same connection and upstream session.</summary>
public sealed class StatefulReconnectTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_client_whose_socket_drops_mid_stream_gets_every_event_in_order_on_the_same_connection()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);
        await using var relay = new TcpRelay(gateway.BaseUrl.Port);
        var start = new ProcessStartInfo("node", ["stateful-client.mjs", $"http://127.0.0.1:{relay.Port}"])
        {
            WorkingDirectory = TestUpstream.Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var client = Process.Start(start)!;
        var stderr = client.StandardError.ReadToEndAsync();
        var lines = client.StandardOutput;

        var ready = (await NextLineAsync(lines, "READY "))["READY ".Length..].Split(' ');
        var (id, connectionId) = (ready[0], ready[1]);
        var socketsBefore = await upstream.Http.GetStringAsync("test/sockets");
        var prediction = Predictions.PostAsync(gateway.Http, "tokens",
            new { question = "blip", socketIOClientId = id, overrideConfig = new { count = 300, rate = 150 } });
        await NextLineAsync(lines, "TOKEN blip:50");
        relay.Cut();

        var done = await NextLineAsync(lines, "DONE ");
        Assert.Equal(HttpStatusCode.OK, (await prediction).Status);
        using var result = JsonDocument.Parse(done["DONE ".Length..]);
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"blip:{i}"), result.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(connectionId, result.RootElement.GetProperty("connectionId").GetString()); // the same connection...
        // ...and the same upstream session: the socket the prediction was sent to existed before the cut,
        // and every token it emitted after the cut still arrived.
        var forwarded = (await upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/tokens")!;
        Assert.Contains((string)forwarded["body"]!["socketIOClientId"]!, socketsBefore);
        Assert.True(relay.Accepted >= 2, "the client reconnected through the relay");
        await client.WaitForExitAsync().WaitAsync(Timeout);
        Assert.True(client.ExitCode == 0, await stderr);
    }

    private static async Task<string> NextLineAsync(StreamReader lines, string prefix)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while (await lines.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }

            Assert.False(line.StartsWith("CLOSED", StringComparison.Ordinal), $"the client's connection closed: {line}");
        }

        throw new InvalidOperationException($"The client ended before printing '{prefix}'.");
    }
}
