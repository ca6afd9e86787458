namespace TromAi.Gateway.Upstream.SocketIOWire;

internal sealed class SocketIOConnectionOptions
{
    /// <summary>The defaults, shared: the options are read-only once built.</summary>
    public static SocketIOConnectionOptions Default { get; } = new();

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// The largest WebSocket message accepted (a frame, or one binary attachment); a larger one ends the
    /// connection instead of growing a buffer without bound.
    /// </summary>
    public int MaxMessageBytes { get; init; } = 100 * 1024 * 1024;

    /// <summary>
    /// 0 (the default): wait for each message with a zero-byte read and rent a buffer per message, so an idle
    /// connection holds none. N: hold an N-byte buffer per connection and read into it, so a message that fits
    /// (a token) takes one read instead of two; longer ones continue in a rented buffer. See Gateway.Bench/RESULTS.md.
    /// </summary>
    public int HeldReceiveBufferBytes { get; init; }

    /// <summary>How long <see cref="SocketIOConnection.DisposeAsync"/> waits for the upstream to acknowledge the goodbye.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(2);
}
