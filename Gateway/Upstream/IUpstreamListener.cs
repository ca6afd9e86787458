namespace TromAi.Gateway.Upstream;

/// <summary>
/// Receives what an <see cref="UpstreamSession"/> hears. Called on SocketIOClient's single receive
/// loop, in wire order: implementations hand the call to a queue and return at once, because a slow
/// listener would stall the socket's pings as well as every later event.
/// </summary>
internal interface IUpstreamListener
{
    void OnEvent(string name, object?[] args);

    void OnLost(string reason);

    void OnRestored(int attempts, TimeSpan downtime);
}
