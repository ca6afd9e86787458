using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Tests.Upstream.SocketIOWire;

/// <summary>
/// The upgrade the gateway writes itself, against a server whose every byte the test writes: what a real
/// socket.io server does is covered by <see cref="SocketIOConnectionTests"/>; here are the answers it does
/// not give on purpose (its first frame in the same segment as its 101, a refusal, a wrong proof, no end).
/// </summary>
public sealed class WebSocketHandshakeTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly TcpListener _server = new(IPAddress.Loopback, 0);

    public WebSocketHandshakeTests() => _server.Start();

    private Uri Endpoint => new($"ws://127.0.0.1:{((IPEndPoint)_server.LocalEndpoint).Port}/tromai/socket.io/?EIO=4&transport=websocket");

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task The_request_is_an_rfc_6455_upgrade_and_a_frame_sent_with_the_answer_is_read_first()
    {
        var connecting = WebSocketHandshake.ConnectAsync(Endpoint, CancellationToken.None);
        using var peer = await _server.AcceptTcpClientAsync().WaitAsync(Timeout);
        var stream = peer.GetStream();
        var request = await ReadHeadAsync(stream);
        var key = HeaderOf(request, "Sec-WebSocket-Key");

        // The 101 and the server's first frame (unmasked text "0{}") in one write, as a fast server sends them.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {WebSocketHandshake.AcceptFor(key)}\r\n\r\n")
            .Concat(new byte[] { 0x81, 3 }).Concat("0{}"u8.ToArray()).ToArray());
        using var socket = await connecting.WaitAsync(Timeout);
        var buffer = new byte[16];
        var first = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).AsTask().WaitAsync(Timeout);

        Assert.StartsWith("GET /tromai/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n", request, StringComparison.Ordinal);
        Assert.Equal($"127.0.0.1:{((IPEndPoint)_server.LocalEndpoint).Port}", HeaderOf(request, "Host"));
        Assert.Equal("websocket", HeaderOf(request, "Upgrade"));
        Assert.Equal("Upgrade", HeaderOf(request, "Connection"));
        Assert.Equal("13", HeaderOf(request, "Sec-WebSocket-Version"));
        Assert.Equal(16, Convert.FromBase64String(key).Length);
        Assert.Equal((WebSocketMessageType.Text, true), (first.MessageType, first.EndOfMessage));
        Assert.Equal("0{}", Encoding.UTF8.GetString(buffer, 0, first.Count));

        // The client's frames reach the server (masked, as RFC 6455 wants from a client).
        await socket.SendAsync("40"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var frame = new byte[8];
        await stream.ReadExactlyAsync(frame).AsTask().WaitAsync(Timeout);
        Assert.Equal(new byte[] { 0x81, 0x82 }, frame[..2]);
        Assert.Equal("40", Encoding.ASCII.GetString([(byte)(frame[6] ^ frame[2]), (byte)(frame[7] ^ frame[3])]));
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0", "the server answered HTTP 200", HttpStatusCode.OK)]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0", "the server answered HTTP 400", HttpStatusCode.BadRequest)]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBwcm9vZg==", "Sec-WebSocket-Accept does not match", null)]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade", "does not switch to websocket", null)]
    [InlineData("SSH-2.0-OpenSSH_9.2", "not HTTP/1.1", null)]
    public async Task An_answer_that_is_not_a_valid_switch_fails_with_what_it_was(string answer, string reason, HttpStatusCode? status)
    {
        var connecting = WebSocketHandshake.ConnectAsync(Endpoint, CancellationToken.None);
        using var peer = await _server.AcceptTcpClientAsync().WaitAsync(Timeout);
        var stream = peer.GetStream();
        await ReadHeadAsync(stream);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(answer + "\r\n\r\n"));

        var error = await Assert.ThrowsAsync<SocketIOClosedException>(() => connecting.WaitAsync(Timeout));

        Assert.StartsWith($"the WebSocket to {Endpoint} did not open: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.Equal(status, error.UpgradeStatus);
    }

    [Fact]
    public async Task An_answer_whose_head_never_ends_is_cut_off_at_16_KB()
    {
        var connecting = WebSocketHandshake.ConnectAsync(Endpoint, CancellationToken.None);
        using var peer = await _server.AcceptTcpClientAsync().WaitAsync(Timeout);
        var stream = peer.GetStream();
        await ReadHeadAsync(stream);
        await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\n" + new string('x', 20_000)));

        var error = await Assert.ThrowsAsync<SocketIOClosedException>(() => connecting.WaitAsync(Timeout));

        Assert.Contains("longer than 16384 bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_closes_without_answering_or_is_not_there_fails_with_a_reason()
    {
        var connecting = WebSocketHandshake.ConnectAsync(Endpoint, CancellationToken.None);
        using (var peer = await _server.AcceptTcpClientAsync().WaitAsync(Timeout))
        {
            await ReadHeadAsync(peer.GetStream());
        }

        var closed = await Assert.ThrowsAsync<SocketIOClosedException>(() => connecting.WaitAsync(Timeout));
        var endpoint = Endpoint;
        _server.Stop();
        var refused = await Assert.ThrowsAsync<SocketIOClosedException>(() => WebSocketHandshake.ConnectAsync(endpoint, CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("closed the connection before answering", closed.Message, StringComparison.Ordinal);
        Assert.IsType<SocketException>(refused.InnerException);
        Assert.Null(refused.UpgradeStatus);
    }

    [Fact]
    public async Task A_wss_endpoint_is_spoken_to_over_tls_and_an_untrusted_certificate_is_refused()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        var endpoint = new Uri($"wss://127.0.0.1:{((IPEndPoint)_server.LocalEndpoint).Port}/socket.io/?EIO=4&transport=websocket");

        var connecting = WebSocketHandshake.ConnectAsync(endpoint, CancellationToken.None);
        using var peer = await _server.AcceptTcpClientAsync().WaitAsync(Timeout);
        await using var tls = new SslStream(peer.GetStream());
        var serving = tls.AuthenticateAsServerAsync(certificate);
        var error = await Assert.ThrowsAsync<SocketIOClosedException>(() => connecting.WaitAsync(Timeout));

        // The client spoke TLS (a plain GET would have ended in the server failing its side and closing, not in a
        // certificate refusal) and refused the self-signed certificate, as ClientWebSocket did. Whether the server's
        // side completes before that depends on the TLS version, so only its end is awaited.
        await Task.WhenAny(serving, Task.Delay(Timeout));
        Assert.IsType<AuthenticationException>(error.InnerException);
        Assert.Contains("did not open", error.Message, StringComparison.Ordinal);
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            await stream.ReadExactlyAsync(one).AsTask().WaitAsync(Timeout);
            head.Append((char)one[0]);
        }

        return head.ToString();
    }

    private static string HeaderOf(string head, string name) =>
        head.Split("\r\n").Single(line => line.StartsWith(name + ": ", StringComparison.OrdinalIgnoreCase))[(name.Length + 2)..];
}
