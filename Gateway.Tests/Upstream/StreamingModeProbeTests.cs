using System.Net;
using System.Net.Sockets;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class StreamingModeProbeTests
{
    [Fact]
    public async Task A_Socket_IO_era_upstream_is_found_to_stream_over_Socket_IO()
    {
        await using var upstream = await TestUpstream.StartAsync();
        using var http = new HttpClient();

        Assert.Equal(StreamingMode.SocketIO, await StreamingModeProbe.ProbeAsync(http, upstream.BaseUrl));
    }

    [Fact]
    public async Task An_SSE_era_upstream_whose_socket_io_path_is_its_web_UI_is_found_to_stream_over_SSE()
    {
        await using var upstream = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });
        using var http = new HttpClient();

        Assert.Equal(StreamingMode.Sse, await StreamingModeProbe.ProbeAsync(http, upstream.BaseUrl));
    }

    [Fact]
    public async Task The_probe_works_on_a_base_url_without_a_trailing_slash()
    {
        await using var upstream = await TestUpstream.StartAsync();
        using var http = new HttpClient();

        var baseUrl = new Uri(upstream.BaseUrl.GetLeftPart(UriPartial.Authority)); // http://127.0.0.1:port
        Assert.Equal(StreamingMode.SocketIO, await StreamingModeProbe.ProbeAsync(http, baseUrl));
    }

    [Fact]
    public async Task An_upstream_with_nothing_at_its_socket_io_path_is_found_to_stream_over_SSE()
    {
        await using var upstream = await TestUpstream.StartAsync();
        using var http = new HttpClient();

        // Below /api/, the upstream answers its 404 error JSON, not an Engine.IO handshake.
        Assert.Equal(StreamingMode.Sse, await StreamingModeProbe.ProbeAsync(http, new Uri(upstream.BaseUrl, "api/")));
    }

    [Fact]
    public async Task An_unreachable_upstream_gives_no_answer_instead_of_a_guess()
    {
        using var http = new HttpClient();

        var error = await Assert.ThrowsAsync<UpstreamUnavailableException>(() => StreamingModeProbe.ProbeAsync(http, new Uri($"http://127.0.0.1:{UnusedPort()}/")));

        Assert.Contains("Gateway:Upstream:Streaming", error.Message);
    }

    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
