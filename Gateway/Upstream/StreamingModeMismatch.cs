using System.Net;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// What a user reads when <c>Gateway:Upstream:Streaming</c> names the wrong era for their TROM.AI: the
/// evidence, the setting and the value to use. Never an address: these reach clients.
/// </summary>
internal static class StreamingModeMismatch
{
    public const string Setting = "Gateway:Upstream:Streaming";

    /// <summary>
    /// True when a WebSocket upgrade of the Socket.IO endpoint was answered as a TROM.AI without Socket.IO
    /// answers it (2.2.5 and later: the web UI's page, 200; or nothing there, 404/405). The probe reads
    /// <c>auto</c>'s answer the same way.
    /// </summary>
    public static bool MeansNoSocketIO(HttpStatusCode status) =>
        (int)status is >= 200 and < 300 || status is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed;

    /// <summary>The upgrade's answer, when a failed Socket.IO connect failed because the upstream has no Socket.IO.</summary>
    public static HttpStatusCode? NoSocketIOStatus(UpstreamUnavailableException e) =>
        e.InnerException is SocketIOWire.SocketIOClosedException { UpgradeStatus: { } status } && MeansNoSocketIO(status) ? status : null;

    /// <summary>Explicit <c>socketio</c> against a TROM.AI that streams over SSE only.</summary>
    public static string NoSocketIO(HttpStatusCode status) =>
        $"TROM.AI has no Socket.IO: its /socket.io/ endpoint answered HTTP {(int)status} where a WebSocket upgrade (101) was expected, "
        + $"as TROM.AI 2.2.5 and later do, which stream over Server-Sent Events. Set {Setting} to sse (or remove it: auto, the default, chooses).";

    /// <summary>Explicit <c>sse</c> against a TROM.AI that streams over Socket.IO only.</summary>
    public static string NoSse(string chatflowId) =>
        $"TROM.AI does not stream over Server-Sent Events: it answered a streaming prediction of chatflow {chatflowId}, which can stream, with plain JSON, "
        + $"as TROM.AI before 2.1 does, which streams over Socket.IO only. Set {Setting} to socketio (or remove it: auto, the default, chooses).";
}
