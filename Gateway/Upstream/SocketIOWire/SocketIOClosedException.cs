namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>A <see cref="SocketIOConnection"/> ended (or never connected); <see cref="Exception.Message"/> says why.</summary>
internal sealed class SocketIOClosedException(string reason, Exception? inner = null) : Exception(reason, inner);
