namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// Hears what a <see cref="SocketIOConnection"/> receives. Every call comes from its one receive
/// loop, in wire order, on the thread the socket read completed on: an implementation hands the
/// event to its own queue and returns, because the next read waits for it.
/// </summary>
internal interface ISocketIOListener
{
    /// <param name="name">Interned for TROM.AI's known names, so comparing or tagging by it allocates nothing.</param>
    /// <param name="args">Each a <see cref="RawJson"/>; binary attachments already inlined as base64 strings. The array is the listener's to keep.</param>
    void OnEvent(string name, object?[] args);

    /// <summary>What the connection calls: a listener that relays the arguments' bytes implements it and skips the objects.</summary>
    /// <param name="args">The listener's to keep.</param>
    void OnEvent(string name, EventArguments args) => OnEvent(name, args.ToArray());

    /// <summary>Called once, after the last event, when a connection that had connected ends, whoever ended it.</summary>
    void OnClosed(string reason);

    /// <summary>
    /// Awaited after each message, with no buffer held: the next message is read once it completes, so a
    /// listener that is full slows the upstream down (TCP) instead of growing. Nothing else is read
    /// meanwhile, Engine.IO's pings included: a wait longer than the server's pingInterval + pingTimeout
    /// ends the connection (the heartbeat). <paramref name="cancellationToken"/> fires when the connection ends.
    /// </summary>
    ValueTask WaitForRoomAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
