namespace TromAi.Gateway.Telemetry;

/// <summary>Where an upstream Socket.IO session stands, as <see cref="GatewayMetrics"/> counts it.</summary>
internal enum UpstreamState
{
    /// <summary>Opening for a new hub connection; its <c>start()</c> waits.</summary>
    Connecting,

    /// <summary>Open: events flow and predictions can be rewritten to its socket id.</summary>
    Connected,

    /// <summary>Lost, backing off between attempts; predictions for it get 503.</summary>
    Reconnecting,
}
