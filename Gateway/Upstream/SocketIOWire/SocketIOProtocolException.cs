namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>A frame from the upstream that is not Engine.IO v4 / Socket.IO v5: it ends the connection.</summary>
internal sealed class SocketIOProtocolException(string message, Exception? inner = null) : Exception(message, inner);
