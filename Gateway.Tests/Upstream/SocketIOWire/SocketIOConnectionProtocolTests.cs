using Microsoft.Extensions.Time.Testing;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Tests.Upstream.SocketIOWire;

/// <summary>
/// The gateway's Socket.IO client against frames the real server never sends: each must end the
/// connection with a reason, never leave a silently dead loop.
/// </summary>
public sealed class SocketIOConnectionProtocolTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private ScriptedSocketIOServer _server = null!;

    public async Task InitializeAsync() => _server = await ScriptedSocketIOServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData("""42["token","unterminated""", "not valid JSON")]
    [InlineData("""42{"not":"an array"}""", "not a JSON array")]
    [InlineData("""42[42,"a number is no name"]""", "without a name")]
    [InlineData("""42["token","x"]trailing""", "not valid JSON")]
    [InlineData("""49["what"]""", "unknown Socket.IO packet type '9'")]
    [InlineData("""7""", "unexpected Engine.IO packet type '7'")]
    [InlineData("""45x-["file"]""", "attachment count")]
    public async Task A_malformed_frame_ends_the_connection_with_a_reason(string frame, string reason)
    {
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        await peer.SendAsync("""42["token","before"]""");
        await peer.SendAsync(frame);
        var closed = await connection.Closed.WaitAsync(Timeout);

        Assert.StartsWith("a malformed frame from the upstream: ", closed);
        Assert.Contains(reason, closed);
        Assert.Equal(closed, await listener.Closed);
        Assert.Equal(["token"], listener.Snapshot().Select(e => e.Name)); // what came before was delivered
    }

    [Fact]
    public async Task Pings_are_answered_and_a_server_that_stops_pinging_is_noticed_after_its_interval_and_timeout()
    {
        var time = new FakeTimeProvider();
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener, pingInterval: 100, pingTimeout: 100, time);
        await using var _ = connection;

        // Each ping is answered and moves the deadline: 3 × 150 ms pass with the connection alive.
        for (var i = 0; i < 3; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(150));
            await peer.SendAsync("2");
            Assert.Equal("3", await peer.ReceiveAsync());
        }

        await peer.SendAsync("""42["token","alive"]""");
        await listener.WaitForAsync(events => events.Count == 1, Timeout);
        Assert.False(connection.Closed.IsCompleted);

        time.Advance(TimeSpan.FromMilliseconds(200)); // then the pings stop
        var closed = await connection.Closed.WaitAsync(Timeout);

        Assert.Equal("no ping from the upstream within 200 ms (its pingInterval + pingTimeout)", closed);
        Assert.Equal(closed, await listener.Closed);
    }

    [Fact]
    public async Task A_reply_to_a_cancelled_barrier_does_not_complete_a_later_one()
    {
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        using var giveUp = new CancellationTokenSource();
        var first = connection.FlushAsync(giveUp.Token);
        var firstRequest = await peer.ReceiveAsync();
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        var second = connection.FlushAsync(CancellationToken.None);
        var secondRequest = await peer.ReceiveAsync();

        // The first reply comes late, after the second request: it must not stand for the second.
        await peer.SendAsync(Refusal(firstRequest!));
        await peer.SendAsync("""42["token","between"]""");
        await peer.SendAsync(Refusal(secondRequest!));
        await second.WaitAsync(Timeout);

        Assert.NotEqual(firstRequest, secondRequest);
        Assert.Equal(["token"], listener.Snapshot().Select(e => e.Name));
    }

    [Fact]
    public async Task Binary_attachments_in_separate_frames_replace_their_placeholders_as_base64()
    {
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        await peer.SendAsync("""452-["file",{"name":"a","data":{"_placeholder":true,"num":1}},{"_placeholder":true,"num":0}]""");
        await peer.SendBinaryAsync([1, 2, 3]);
        await peer.SendAsync("2"); // a heartbeat between attachments is Engine.IO's, not the packet's
        Assert.Equal("3", await peer.ReceiveAsync());
        await peer.SendBinaryAsync([]);
        await peer.SendAsync("""42["token","after"]""");
        await listener.WaitForAsync(events => events.Count == 2, Timeout);

        var events = listener.Snapshot();
        Assert.Equal("file", events[0].Name);
        Assert.Equal("""[{"name":"a","data":""},"AQID"]""", RecordingListener.ArgsJson(events[0].Args));
        Assert.Equal("token", events[1].Name);
    }

    [Fact]
    public async Task Events_with_an_ack_id_are_relayed_and_other_namespaces_are_not()
    {
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        await peer.SendAsync("""4212["acked","a"]""");
        await peer.SendAsync("""42/admin,["elsewhere"]""");
        await peer.SendAsync("""42/,7["main",1]""");
        await peer.SendAsync("""42["end"]""");
        await listener.WaitForAsync(events => events.Any(e => e.Name == "end"), Timeout);

        Assert.Equal(["acked", "main", "end"], listener.Snapshot().Select(e => e.Name));
    }

    [Fact]
    public async Task A_text_packet_where_an_attachment_is_due_ends_the_connection()
    {
        var listener = new RecordingListener();
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        await peer.SendAsync("""451-["file",{"_placeholder":true,"num":0}]""");
        await peer.SendAsync("""42["token","too early"]""");

        Assert.Contains("attachments were still expected", await connection.Closed.WaitAsync(Timeout));
        Assert.Empty(listener.Snapshot());
    }

    [Fact]
    public async Task A_listener_that_throws_ends_the_connection_with_the_reason()
    {
        var listener = new RecordingListener { ThrowOn = name => name == "poison" };
        var (connection, peer) = await ConnectAsync(listener);
        await using var _ = connection;

        await peer.SendAsync("""42["poison"]""");

        Assert.Contains("listener refused poison", await connection.Closed.WaitAsync(Timeout));
    }

    [Fact]
    public async Task A_refused_connect_fails_with_the_servers_message()
    {
        var connecting = SocketIOConnection.ConnectAsync(_server.BaseUrl, new RecordingListener(), null, CancellationToken.None);
        var peer = await _server.AcceptAsync(Timeout);
        await peer.SendAsync("""0{"sid":"e","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}""");
        Assert.Equal("40", await peer.ReceiveAsync());
        await peer.SendAsync("""44{"message":"Not authorized"}""");

        var error = await Assert.ThrowsAsync<SocketIOClosedException>(() => connecting.WaitAsync(Timeout));
        Assert.Equal("the upstream refused the socket: Not authorized", error.Message);
        peer.End();
    }

    /// <summary>What socket.io answers a CONNECT to a namespace nobody registered.</summary>
    private static string Refusal(string connectRequest) =>
        "44" + connectRequest[2..].TrimEnd(',') + """,{"message":"Invalid namespace"}""";

    private async Task<(SocketIOConnection Connection, ScriptedPeer Peer)> ConnectAsync(
        RecordingListener listener, int pingInterval = 25000, int pingTimeout = 20000, TimeProvider? time = null)
    {
        var options = new SocketIOConnectionOptions { Time = time ?? TimeProvider.System };
        var connecting = SocketIOConnection.ConnectAsync(_server.BaseUrl, listener, options, CancellationToken.None);
        var peer = await _server.AcceptAsync(Timeout);
        await peer.HandshakeAsync(pingInterval, pingTimeout);
        var connection = await connecting.WaitAsync(Timeout);
        Assert.Equal("scripted-socket", connection.SocketId);
        return (connection, peer);
    }
}
