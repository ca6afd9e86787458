namespace TromAi.Gateway.Bench.Hosting;

/// <summary>The two ways a client can reach the upstream's streams.</summary>
internal enum BenchPath
{
    /// <summary>A Socket.IO client connected straight to the upstream.</summary>
    Direct,

    /// <summary>A SignalR client through the gateway.</summary>
    Bridged,
}
