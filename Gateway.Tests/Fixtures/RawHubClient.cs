using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// A client that speaks SignalR's JSON protocol by hand over a WebSocket, for what no well-behaved
/// client does (never pinging, unknown message types) and for what a client library hides (the
/// close message and the WebSocket's close status).
/// </summary>
public sealed class RawHubClient : IAsyncDisposable
{
    private const char RecordSeparator = '\u001e';
    private readonly ClientWebSocket _socket;
    private readonly Queue<string> _pending = new();
    private readonly StringBuilder _partial = new();

    private RawHubClient(ClientWebSocket socket) => _socket = socket;

    /// <summary>The WebSocket's close status once the server closed it.</summary>
    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    /// <summary>Negotiates (version 1) and opens the WebSocket; sends nothing yet.</summary>
    public static async Task<RawHubClient> OpenAsync(Uri hubUrl)
    {
        using var http = new HttpClient();
        using var negotiate = await http.PostAsync(new Uri(hubUrl + "/negotiate?negotiateVersion=1"), content: null);
        negotiate.EnsureSuccessStatusCode();
        var token = (await negotiate.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("connectionToken").GetString();
        var socket = new ClientWebSocket();
        var url = new UriBuilder(hubUrl) { Scheme = hubUrl.Scheme == "https" ? "wss" : "ws", Query = $"id={Uri.EscapeDataString(token!)}" };
        await socket.ConnectAsync(url.Uri, CancellationToken.None);
        return new RawHubClient(socket);
    }

    /// <summary>Sends the JSON handshake and returns the server's answer (<c>{}</c> when accepted).</summary>
    public async Task<string> HandshakeAsync(TimeSpan timeout)
    {
        await SendAsync("""{"protocol":"json","version":1}""");
        return await ReceiveAsync(timeout) ?? throw new InvalidOperationException("The server closed the connection instead of answering the handshake.");
    }

    /// <summary>Sends one or more messages in one WebSocket frame, each followed by the record separator.</summary>
    public Task SendAsync(params string[] messages) =>
        _socket.SendAsync(Encoding.UTF8.GetBytes(string.Concat(messages.Select(m => m + RecordSeparator))), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>The next message from the server, or null once it closed the WebSocket (see <see cref="CloseStatus"/>).</summary>
    /// <exception cref="WebSocketException">The connection ended without a close handshake.</exception>
    public async Task<string?> ReceiveAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        return await ReceiveAsync(deadline.Token);
    }

    /// <inheritdoc cref="ReceiveAsync(TimeSpan)"/>
    public async Task<string?> ReceiveAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        while (_pending.Count == 0)
        {
            var result = await _socket.ReceiveAsync(buffer, cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                return null;
            }

            _partial.Append(Encoding.UTF8.GetString(buffer, 0, result.Count));
            var text = _partial.ToString();
            var end = text.LastIndexOf(RecordSeparator);
            if (end >= 0)
            {
                foreach (var message in text[..end].Split(RecordSeparator))
                {
                    _pending.Enqueue(message);
                }

                _partial.Clear().Append(text[(end + 1)..]);
            }
        }

        return _pending.Dequeue();
    }

    /// <summary>Reads messages until the server closes, skipping its keep-alive pings; returns what came before the close.</summary>
    /// <exception cref="OperationCanceledException">The server did not close within <paramref name="timeout"/>.</exception>
    public async Task<List<string>> ReceiveUntilClosedAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var messages = new List<string>();
        while (await ReceiveAsync(deadline.Token) is { } message)
        {
            if (message != """{"type":6}""")
            {
                messages.Add(message);
            }
        }

        return messages;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            // Closing a test's leftover: nothing to learn from its failure.
        }

        _socket.Dispose();
    }
}
