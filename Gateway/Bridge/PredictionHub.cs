using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.SignalR;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The hub at <c>/hubs/prediction</c>. Every upstream event reaches the caller under its own name;
/// by the time a client's <c>start()</c> has completed, its upstream session is already connected.
/// </summary>
public sealed class PredictionHub : Hub
{
    public const string Path = "/hubs/prediction";

    public override Task OnConnectedAsync()
    {
        Context.Features.GetRequiredFeature<BridgedConnection>().Relay.Start();
        return Task.CompletedTask;
    }

    /// <summary>The id to send as <c>socketIOClientId</c> in a prediction request to this gateway.</summary>
    public string GetSocketIOClientId() => Context.ConnectionId;
}
