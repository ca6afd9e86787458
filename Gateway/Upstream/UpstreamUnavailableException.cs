namespace TromAi.Gateway.Upstream;

/// <summary>TROM.AI did not give a connection its Socket.IO session in time.</summary>
public sealed class UpstreamUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
