using System.Net.WebSockets;

namespace TromAi.Gateway.Upstream.SocketIOWire;

internal sealed class SocketIOConnectionOptions
{
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Headers, proxy, keep-alive of the WebSocket, set before it connects.</summary>
    public Action<ClientWebSocketOptions>? ConfigureWebSocket { get; init; }

    /// <summary>
    /// The largest WebSocket message accepted (a frame, or one binary attachment); a larger one ends the
    /// connection instead of growing a buffer without bound.
    /// </summary>
    public int MaxMessageBytes { get; init; } = 100 * 1024 * 1024;

    /// <summary>How long <see cref="SocketIOConnection.DisposeAsync"/> waits for the upstream to acknowledge the goodbye.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(2);
}
