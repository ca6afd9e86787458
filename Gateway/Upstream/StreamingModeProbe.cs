using System.Net;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Upstream;

/// <summary>How TROM.AI streams its answers (<c>Gateway:Upstream:Streaming</c>).</summary>
public enum StreamingMode
{
    /// <summary>Socket.IO, TROM.AI up to 2.2.4: events go to the socket named by <c>socketIOClientId</c>.</summary>
    SocketIO,

    /// <summary>Server-Sent Events, TROM.AI 2.1 and later: the prediction's own response is the stream (<c>"streaming": true</c>).</summary>
    Sse,

    /// <summary>Ask the upstream at start (<see cref="StreamingModeProbe"/>).</summary>
    Auto,
}

/// <summary>
/// Finds out which way a TROM.AI streams by asking for an Engine.IO handshake, which only a
/// Socket.IO-era upstream can give: from 2.2.5 on, <c>/socket.io/</c> is just another path of the web
/// UI and answers its HTML. No other endpoint tells them apart without an API key, and
/// <c>chatflows-streaming</c> needs a chatflow id.
/// </summary>
internal static class StreamingModeProbe
{
    // The handshake is ~120 bytes; the web UI's page can be large and is never needed whole.
    private const int MaxProbeBytes = 4096;
    private const string HandshakePath = "socket.io/?EIO=4&transport=polling";
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// <see cref="StreamingMode.SocketIO"/> when <c>GET socket.io/?EIO=4&amp;transport=polling</c> (below
    /// <paramref name="baseUrl"/>) opens an Engine.IO session, or is refused by Engine.IO itself (its
    /// <c>{"code","message"}</c> error: a Socket.IO server whose session will say why);
    /// <see cref="StreamingMode.Sse"/> when it answers anything else with a 2xx (the web UI), or 404/405.
    /// </summary>
    /// <param name="cancellationToken">Bounds the whole probe, body included (<see cref="HttpClient.Timeout"/> stops at the headers).</param>
    /// <exception cref="UpstreamUnavailableException">No conclusive answer: unreachable, timed out (the client's timeout), or another status (5xx, 401 from a proxy...).</exception>
    public static async Task<StreamingMode> ProbeAsync(HttpClient http, Uri baseUrl, Action<HttpRequestMessage>? prepare = null, CancellationToken cancellationToken = default) =>
        (await ProbeWithEvidenceAsync(http, baseUrl, prepare, cancellationToken)).Mode;

    /// <summary>As <see cref="ProbeAsync"/>, with what the upstream answered: the evidence <c>auto</c> logs with its choice (no address).</summary>
    public static async Task<StreamingModeEvidence> ProbeWithEvidenceAsync(HttpClient http, Uri baseUrl, Action<HttpRequestMessage>? prepare = null, CancellationToken cancellationToken = default)
    {
        var handshake = new Uri(WithTrailingSlash(baseUrl), HandshakePath);
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, handshake);
            prepare?.Invoke(request);
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw Inconclusive(baseUrl, e is TaskCanceledException ? "no answer in time" : e.Message, e);
        }

        using (response)
        {
            // The web UI's page: no need to read it (Engine.IO answers text/plain or JSON).
            if (response.IsSuccessStatusCode && string.Equals(response.Content.Headers.ContentType?.MediaType, "text/html", StringComparison.OrdinalIgnoreCase))
            {
                return new(StreamingMode.Sse, $"GET {HandshakePath} answered {(int)response.StatusCode} with a web page (text/html), not Engine.IO");
            }

            byte[] head;
            try
            {
                head = await ReadHeadAsync(response.Content, cancellationToken);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                throw Inconclusive(baseUrl, e.Message, e);
            }

            if (TryGetOpenedSession(head, out var sid))
            {
                await CloseSessionAsync(http, handshake, sid, prepare, cancellationToken);
                return new(StreamingMode.SocketIO, $"GET {HandshakePath} opened an Engine.IO session");
            }

            if (IsEngineIoError(head))
            {
                return new(StreamingMode.SocketIO, $"GET {HandshakePath} was refused by Engine.IO itself ({(int)response.StatusCode} with its {{\"code\",\"message\"}} error)");
            }

            if (response.IsSuccessStatusCode || response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed)
            {
                return new(StreamingMode.Sse, $"GET {HandshakePath} answered {(int)response.StatusCode}, not Engine.IO");
            }

            throw Inconclusive(baseUrl, $"{handshake.AbsolutePath} answered {(int)response.StatusCode} {response.ReasonPhrase}", null);
        }
    }

    private static async Task<byte[]> ReadHeadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var body = await content.ReadAsStreamAsync(cancellationToken);
        var head = new byte[MaxProbeBytes];
        var length = 0;
        int read;
        while (length < head.Length && (read = await body.ReadAsync(head.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }

        return head[..length];
    }

    /// <summary>An Engine.IO v4 open packet: <c>0{"sid":"...","upgrades":[...],"pingInterval":...}</c>.</summary>
    private static bool TryGetOpenedSession(ReadOnlySpan<byte> head, out string sid)
    {
        sid = "";
        if (head.Length < 2 || head[0] != (byte)'0' || head[1] != (byte)'{')
        {
            return false;
        }

        // Polling may batch packets after the open packet, separated by a record separator.
        var end = head.IndexOf((byte)0x1e);
        if (TryParseObject(end < 0 ? head[1..] : head[1..end], out var open)
            && open.TryGetProperty("sid"u8, out var id) && id.ValueKind == JsonValueKind.String)
        {
            sid = id.GetString()!;
            return true;
        }

        return false;
    }

    /// <summary>Engine.IO's own refusal (bad request, forbidden by an <c>allowRequest</c> hook): <c>{"code":N,"message":"..."}</c>.</summary>
    private static bool IsEngineIoError(ReadOnlySpan<byte> head) =>
        TryParseObject(head, out var error)
        && error.TryGetProperty("code"u8, out var code) && code.ValueKind == JsonValueKind.Number
        && error.TryGetProperty("message"u8, out var message) && message.ValueKind == JsonValueKind.String;

    private static bool TryParseObject(ReadOnlySpan<byte> json, out JsonElement value)
    {
        value = default;
        try
        {
            var reader = new Utf8JsonReader(json);
            value = JsonElement.ParseValue(ref reader);
            return value.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// Sends the Engine.IO close packet, so the session the probe opened goes at once instead of
    /// lingering for the upstream's ping timeout. Best effort: the mode is known either way.
    /// </summary>
    private static async Task CloseSessionAsync(HttpClient http, Uri handshake, string sid, Action<HttpRequestMessage>? prepare, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CloseTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{handshake}&sid={Uri.EscapeDataString(sid)}"))
            {
                Content = new StringContent("1", Encoding.UTF8, "text/plain"),
            };
            prepare?.Invoke(request);
            using var response = await http.SendAsync(request, timeout.Token);
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // The session times out on the upstream by itself.
        }
    }

    private static Uri WithTrailingSlash(Uri baseUrl) =>
        baseUrl.AbsolutePath.EndsWith('/') ? baseUrl : new Uri(baseUrl.GetLeftPart(UriPartial.Path) + "/");

    private static UpstreamUnavailableException Inconclusive(Uri baseUrl, string reason, Exception? inner) =>
        new($"Could not tell how TROM.AI at {baseUrl} streams (Gateway:Upstream:Streaming=auto): {reason}. Set socketio or sse to skip the probe.", inner);
}
