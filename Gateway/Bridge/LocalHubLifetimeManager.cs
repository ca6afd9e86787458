using Microsoft.AspNetCore.SignalR;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// SignalR's in-memory lifetime manager (one instance, no Redis), which also starts each bridged
/// connection's relay on the <see cref="HubConnectionContext"/> it writes to (<see cref="BridgedConnection.OnHubConnected"/>).
/// </summary>
internal sealed class LocalHubLifetimeManager<THub>(ILogger<DefaultHubLifetimeManager<THub>> logger)
    : DefaultHubLifetimeManager<THub>(logger) where THub : Hub
{
    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        BridgedConnection.OnHubConnected(connection);
        return base.OnConnectedAsync(connection);
    }
}
