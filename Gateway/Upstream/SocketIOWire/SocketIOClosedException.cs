using System.Net;

namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>A <see cref="SocketIOConnection"/> ended (or never connected); <see cref="Exception.Message"/> says why.</summary>
internal sealed class SocketIOClosedException(string reason, Exception? inner = null) : Exception(reason, inner)
{
    /// <summary>
    /// What the server answered the WebSocket upgrade with, when it answered but did not switch protocols
    /// (an SSE-era TROM.AI answers its web page, 200): null when it did switch, or gave no HTTP answer at all.
    /// </summary>
    public HttpStatusCode? UpgradeStatus { get; init; }
}
