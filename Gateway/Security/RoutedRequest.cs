using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Net.Http.Headers;
using TromAi.Gateway.Health;

namespace TromAi.Gateway.Security;

/// <summary>
/// What a request is, as routing matched it. Limits and credentials ask the endpoint routing chose
/// rather than compare paths themselves: routing matches in any case and with a trailing slash
/// (<c>/hubs/prediction/NEGOTIATE/</c> negotiates), and a path compared by hand would disagree.
/// </summary>
internal static class RoutedRequest
{
    internal enum Kind
    {
        /// <summary>REST, proxied or the gateway's own.</summary>
        Other,

        /// <summary><c>/healthz</c> or <c>/readyz</c>.</summary>
        Probe,

        /// <summary>The hub's negotiate.</summary>
        Negotiate,

        /// <summary>The hub's transports: a WebSocket, SSE, a long poll or a send.</summary>
        HubTransport,
    }

    private static readonly MediaTypeHeaderValue EventStream = new("text/event-stream");

    public static Kind KindOf(HttpContext context)
    {
        var metadata = context.GetEndpoint()?.Metadata;
        if (metadata is null)
        {
            return Kind.Other;
        }

        if (metadata.GetMetadata<NegotiateMetadata>() is not null)
        {
            return Kind.Negotiate;
        }

        if (metadata.GetMetadata<HubMetadata>() is not null)
        {
            return Kind.HubTransport;
        }

        return context.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } pattern }
            && (pattern.Equals(HealthEndpoints.Liveness, StringComparison.OrdinalIgnoreCase) || pattern.Equals(HealthEndpoints.Readiness, StringComparison.OrdinalIgnoreCase))
            ? Kind.Probe
            : Kind.Other;
    }

    /// <summary>
    /// A hub request that a browser sends without headers of its own: the WebSocket, or the SSE
    /// stream (EventSource). Told apart as SignalR's dispatcher tells them apart.
    /// </summary>
    public static bool IsBrowserTransport(HttpContext context) =>
        KindOf(context) == Kind.HubTransport
        && (context.WebSockets.IsWebSocketRequest
            || (HttpMethods.IsGet(context.Request.Method) && context.Request.GetTypedHeaders().Accept?.Contains(EventStream) == true));
}
