namespace TromAi.Gateway.Bench.Hosting;

/// <summary>The ways a client can reach the upstream's streams.</summary>
internal enum BenchPath
{
    /// <summary>A Socket.IO client connected straight to the upstream.</summary>
    Direct,

    /// <summary>A SignalR client through the gateway.</summary>
    Bridged,

    /// <summary>
    /// The direct path's Socket.IO client through nginx's WebSocket proxy (<see cref="NginxProxy"/>): what a plain relay
    /// in C adds and costs per event on the same machine, the yardstick for the bridge. Its predictions go straight
    /// to the upstream, as the direct path's do.
    /// </summary>
    Nginx,
}
