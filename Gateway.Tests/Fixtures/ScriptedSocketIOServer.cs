using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// An Engine.IO WebSocket endpoint whose every frame the test writes: for what the real socket.io
/// server never does (malformed frames, a heartbeat that stops, replies held back or reordered).
/// Everything a real server does is tested against <see cref="TestUpstream"/>.
/// </summary>
public sealed class ScriptedSocketIOServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Channel<ScriptedPeer> _peers = Channel.CreateUnbounded<ScriptedPeer>();
    private readonly System.Collections.Concurrent.ConcurrentBag<ScriptedPeer> _everyPeer = [];

    private ScriptedSocketIOServer(WebApplication app) => _app = app;

    public Uri BaseUrl { get; private set; } = null!;

    public static async Task<ScriptedSocketIOServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new ScriptedSocketIOServer(app);
        app.UseWebSockets();
        app.Map("/socket.io/", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var peer = new ScriptedPeer(socket);
            server._everyPeer.Add(peer);
            await server._peers.Writer.WriteAsync(peer);
            await peer.Done; // the test owns the socket until it ends the peer
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseUrl = new Uri(address + "/");
        return server;
    }

    /// <summary>The next client that opened a WebSocket.</summary>
    public async Task<ScriptedPeer> AcceptAsync(TimeSpan timeout) => await _peers.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    /// <summary>The next client that opened a WebSocket, for a test that serves however many come until it cancels.</summary>
    public async Task<ScriptedPeer> AcceptAsync(CancellationToken cancellationToken) => await _peers.Reader.ReadAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        // Every handler returns, accepted by the test or not, so stopping does not wait out the host's shutdown timeout.
        foreach (var peer in _everyPeer)
        {
            peer.End();
        }

        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>One client's WebSocket on the <see cref="ScriptedSocketIOServer"/>.</summary>
public sealed class ScriptedPeer(WebSocket socket)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal Task Done => _done.Task;

    public Task SendAsync(string text) => socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    public Task SendBinaryAsync(byte[] bytes) => socket.SendAsync(bytes, WebSocketMessageType.Binary, true, CancellationToken.None);

    /// <summary>The next text frame from the client; null once it has closed.</summary>
    public async Task<string?> ReceiveAsync()
    {
        var buffer = new byte[64 * 1024];
        var count = 0;
        WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), CancellationToken.None).WaitAsync(Timeout);
            count += result.Count;
        }
        while (!result.EndOfMessage);

        return result.MessageType == WebSocketMessageType.Close ? null : Encoding.UTF8.GetString(buffer, 0, count);
    }

    /// <summary>Engine.IO open with the given heartbeat, then accepts the client's CONNECT to the main namespace as socket <paramref name="sid"/>.</summary>
    public async Task HandshakeAsync(int pingInterval = 25000, int pingTimeout = 20000, string sid = "scripted-socket")
    {
        await SendAsync($$"""0{"sid":"engine-{{sid}}","upgrades":[],"pingInterval":{{pingInterval}},"pingTimeout":{{pingTimeout}},"maxPayload":1000000}""");
        Assert.Equal("40", await ReceiveAsync());
        await SendAsync($$"""40{"sid":"{{sid}}"}""");
    }

    public void End() => _done.TrySetResult();
}
