using System.Net;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Proxy;

namespace TromAi.Gateway.Security;

/// <summary>
/// Everything below the hub's path is the gateway's: routing takes the hub's own endpoints
/// (negotiate, the transports) first, and anything else there gets a 404 here instead of going on
/// to TROM.AI, where a client could reach what the gateway's hub path was meant to hide.
/// </summary>
internal static class HubPathGuard
{
    public static IEndpointConventionBuilder MapHubPathGuard(this IEndpointRouteBuilder endpoints) =>
        endpoints.Map(PredictionHub.Path + "/{**rest}", context => ErrorResponse.WriteAsync(context, HttpStatusCode.NotFound,
                $"Not found: below {PredictionHub.Path} the gateway serves only its SignalR hub."))
            .WithDisplayName("Hub path guard");
}
