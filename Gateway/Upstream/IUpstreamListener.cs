namespace TromAi.Gateway.Upstream;

/// <summary>
/// Receives what an <see cref="UpstreamSession"/> hears. Called on the upstream socket's single receive
/// loop, in wire order: implementations hand the call to a queue and return at once, because a slow
/// listener would stall the socket's pings as well as every later event.
/// </summary>
internal interface IUpstreamListener
{
    void OnEvent(string name, object?[] args);

    /// <summary>What the WebSocket transport calls (the polling one calls the other): a listener that relays the arguments' bytes implements it and skips the objects.</summary>
    void OnEvent(string name, EventArguments args) => OnEvent(name, args.ToArray());

    void OnLost(string reason);

    void OnRestored(int attempts, TimeSpan downtime);

    /// <summary>
    /// Awaited on the receive loop after each frame (WebSocket transport): the socket's next frame is
    /// read once it completes, so a listener that is full slows the upstream down instead of growing.
    /// Nothing else is read meanwhile, Engine.IO's pings included: keep the wait well below the
    /// upstream's ping timeout.
    /// </summary>
    ValueTask WaitForRoomAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
