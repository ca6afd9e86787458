namespace TromAi.Gateway.Bridge;

/// <summary>What a <see cref="KeptStream"/> tells the store that holds it, outside its own lock.</summary>
internal interface IKeptStreamHost
{
    /// <summary>The stream's size changed by <paramref name="bytes"/> (negative: it dropped events).</summary>
    void Resized(KeptStream stream, long bytes);

    /// <summary>An event or the stream's end was kept.</summary>
    void Changed(KeptStream stream);

    /// <summary>The stream ended (answer or error): its retention starts.</summary>
    void Ended(KeptStream stream);
}
