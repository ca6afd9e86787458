using System.Net;
using System.Text.Json;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Upstream;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Tests.Upstream.SocketIOWire;

/// <summary>The gateway's own Socket.IO client against the real socket.io 4.8 server of the test upstream.</summary>
public sealed class SocketIOConnectionTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private TestUpstream _upstream = null!;

    public async Task InitializeAsync() => _upstream = await TestUpstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task Connect_completes_with_the_socket_id_the_upstream_addresses()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        var sockets = await _upstream.Http.GetFromJsonElementAsync("test/sockets");
        Assert.Equal([connection.SocketId], sockets.GetProperty("ids").EnumerateArray().Select(id => id.GetString()));
    }

    [Theory]
    [InlineData(0)] // zero-byte reads, the default
    [InlineData(16)] // a held buffer smaller than most frames: every message continues in a rented one
    [InlineData(1024)]
    public async Task Every_event_of_the_all_events_chatflow_arrives_in_order_with_its_arguments_as_sent(int heldBufferBytes)
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener, heldBufferBytes);

        var (status, _) = await Predictions.PostAsync(_upstream.Http, "all-events", new { question = "q", socketIOClientId = connection.SocketId });
        Assert.Equal(HttpStatusCode.OK, status);
        await connection.FlushAsync(CancellationToken.None).WaitAsync(Timeout); // the POST answered after its last emit

        var received = listener.Snapshot();
        Assert.Equal(
            AllEvents.Expected.Select(e => $"{e.Name} {e.ArgsJson}"),
            received.Select(e => $"{e.Name} {AllEvents.Canonical(RecordingListener.ArgsJson(e.Args))}"));
        Assert.All(received.SelectMany(e => e.Args), arg => Assert.IsType<RawJson>(arg));
        // Known names are the interned literals: a token costs no string for its name.
        Assert.Same("token", received.First(e => e.Name == "token").Name);
        Assert.Same("sourceDocuments", received.First(e => e.Name == "sourceDocuments").Name);
    }

    [Fact]
    public async Task Arguments_keep_the_exact_bytes_the_upstream_wrote()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        await Predictions.PostAsync(_upstream.Http, "all-events", new { question = "q", socketIOClientId = connection.SocketId });
        await connection.FlushAsync(CancellationToken.None).WaitAsync(Timeout);

        var events = listener.Snapshot();
        // JSON.stringify's own spelling, not a re-encoding: non-ASCII unescaped, numbers as written, escapes as sent.
        Assert.Equal("""["x",42,{"nested":[1,null,true,"é ✓"]}]""", RecordingListener.ArgsJson(events.Single(e => e.Name == "brandNewEvent").Args));
        Assert.Equal("[3.14159,9007199254740991,-12,0,1e-7]", RecordingListener.ArgsJson(events.Single(e => e.Name == "numbers").Args));
        Assert.Equal("""["[{\"agentName\":\"Supervisor\",\"messages\":[]}]"]""", RecordingListener.ArgsJson(events.Single(e => e.Name == "agentReasoningJson").Args));
        Assert.Equal("""[{"name":"blob.bin","data":"AAEC+v8="}]""", RecordingListener.ArgsJson(events.Single(e => e.Name == "binaryEvent").Args));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1024)]
    public async Task A_stream_of_ten_thousand_tokens_at_full_speed_arrives_complete_and_in_order(int heldBufferBytes)
    {
        const int count = 10_000;
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener, heldBufferBytes);

        var (status, _) = await Predictions.PostAsync(_upstream.Http, "tokens", new { question = "t", socketIOClientId = connection.SocketId, overrideConfig = new { count } });
        Assert.Equal(HttpStatusCode.OK, status);
        await listener.WaitForAsync(events => events.Count > 0 && events[^1].Name == "end", Timeout);

        var events = listener.Snapshot();
        Assert.Equal("start", events[0].Name);
        Assert.Equal("""["t:0"]""", RecordingListener.ArgsJson(events[0].Args));
        var tokens = events.Where(e => e.Name == "token").Select(e => RecordingListener.ArgsJson(e.Args)).ToList();
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"[\"t:{i}\"]"), tokens);
        Assert.Equal(count + 2, events.Count);
    }

    [Fact]
    public async Task Each_barrier_completes_after_every_event_emitted_before_it()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        // Prediction k emits two events (its question as a token, then end); barrier k is sent once its POST has answered.
        var barriers = new List<Task<int>>();
        for (var k = 1; k <= 5; k++)
        {
            await Predictions.PostAsync(_upstream.Http, "echo-question", new { question = $"q{k}", socketIOClientId = connection.SocketId });
            barriers.Add(connection.FlushAsync(CancellationToken.None).ContinueWith(
                flushed => flushed.IsCompletedSuccessfully ? listener.Snapshot().Count : -1, TaskScheduler.Default));
        }

        var seenAtBarrier = await Task.WhenAll(barriers).WaitAsync(Timeout);

        Assert.All(seenAtBarrier.Select((seen, i) => (Seen: seen, Emitted: 2 * (i + 1))), b => Assert.True(b.Seen >= b.Emitted, $"{b.Seen} events seen at a barrier after {b.Emitted}"));
        Assert.Equal(10, listener.Snapshot().Count);
    }

    [Fact]
    public async Task A_cancelled_barrier_fails_alone_and_the_next_one_still_works()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connection.FlushAsync(cancelled.Token));
        await Predictions.PostAsync(_upstream.Http, "all-events", new { question = "q", socketIOClientId = connection.SocketId });
        await connection.FlushAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(AllEvents.Expected.Count, listener.Snapshot().Count);
    }

    [Fact]
    public async Task The_upstream_dropping_the_socket_closes_the_connection_with_its_reason()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        Assert.Equal(1, await _upstream.DropSocketsAsync());
        var reason = await connection.Closed.WaitAsync(Timeout);

        Assert.Contains("io server disconnect", reason);
        Assert.Equal(reason, await listener.Closed);
        Assert.Equal(1, listener.ClosedCalls);
        var failed = await Assert.ThrowsAsync<SocketIOClosedException>(() => connection.FlushAsync(CancellationToken.None));
        Assert.Equal(reason, failed.Message);
    }

    [Fact]
    public async Task The_upstream_restarting_closes_the_connection_with_a_reason()
    {
        var listener = new RecordingListener();
        await using var connection = await ConnectAsync(listener);

        await _upstream.RestartAsync(TimeSpan.FromMilliseconds(100));
        var reason = await connection.Closed.WaitAsync(Timeout);

        Assert.Contains("upstream", reason);
        Assert.Equal(reason, await listener.Closed);
    }

    [Fact]
    public async Task A_barrier_waiting_when_the_connection_ends_fails_with_the_reason()
    {
        var listener = new RecordingListener();
        var connection = await ConnectAsync(listener);

        await connection.DisposeAsync();

        Assert.Equal("closed by the gateway", await connection.Closed.WaitAsync(Timeout));
        var failed = await Assert.ThrowsAsync<SocketIOClosedException>(() => connection.FlushAsync(CancellationToken.None));
        Assert.Equal("closed by the gateway", failed.Message);
        await _upstream.WaitForSocketCountAsync(0, Timeout); // the goodbye reached the server
    }

    [Fact]
    public async Task Connecting_to_a_server_without_socket_io_fails_with_a_reason()
    {
        await using var sse = await TestUpstream.StartAsync(environment: new Dictionary<string, string> { ["STREAMING"] = "sse" });

        var error = await Assert.ThrowsAsync<SocketIOClosedException>(
            () => SocketIOConnection.ConnectAsync(sse.BaseUrl, new RecordingListener(), null, CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("did not open", error.Message);
    }

    private Task<SocketIOConnection> ConnectAsync(RecordingListener listener, int heldBufferBytes = 0) =>
        SocketIOConnection.ConnectAsync(_upstream.BaseUrl, listener, new SocketIOConnectionOptions { HeldReceiveBufferBytes = heldBufferBytes }, CancellationToken.None).WaitAsync(Timeout);
}

internal static class HttpClientJsonExtensions
{
    public static async Task<JsonElement> GetFromJsonElementAsync(this HttpClient http, string path) =>
        JsonDocument.Parse(await http.GetStringAsync(path)).RootElement.Clone();
}
