namespace TromAi.Gateway.Scaleout;

/// <summary>
/// An operation that needs another instance (a send to, a group change of, or a client result from a connection
/// this instance does not hold) could not be made because Redis is unreachable. Nothing was delivered.
/// </summary>
internal sealed class RedisUnavailableException(string message, Exception? innerException = null) : Exception(message, innerException);
