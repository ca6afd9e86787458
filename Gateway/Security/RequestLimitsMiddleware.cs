using System.Net;
using Microsoft.AspNetCore.Http.Features;
using TromAi.Gateway.Proxy;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Security;

/// <summary>
/// Applies <see cref="RequestLimits"/> before anything else runs: 503 when the instance holds all the
/// hub connections it may (another instance may have room), 429 with <c>Retry-After</c> when one
/// client address asks too much, 413 for a body over <c>Gateway:Limits:MaxRequestBodyBytes</c>.
/// </summary>
internal sealed partial class RequestLimitsMiddleware(RequestDelegate next, RequestLimits limits, GatewayMetrics metrics, ILogger<RequestLimitsMiddleware> logger)
{
    // Not async itself: a hub connection's request stays in the middleware for the connection's life,
    // and one state machine held per connection (HubRequestAsync's) is enough.
    public Task InvokeAsync(HttpContext context)
    {
        // Routing has run: what the request is comes from the endpoint it matched, in whatever spelling.
        var kind = RoutedRequest.KindOf(context);
        if (kind == RoutedRequest.Kind.Probe)
        {
            return next(context); // probes are never limited: a full instance is still alive
        }

        var ip = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        return kind is RoutedRequest.Kind.Negotiate or RoutedRequest.Kind.HubTransport
            ? HubRequestAsync(context, kind, ip)
            : RequestAsync(context, ip);
    }

    private async Task RequestAsync(HttpContext context, string ip)
    {
        using var lease = limits.Requests.AttemptAcquire(ip);
        if (!lease.IsAcquired)
        {
            await RejectAsync(context, HttpStatusCode.TooManyRequests, "request_rate",
                $"Too many requests from this address (Gateway:Limits:RequestsPerIpPerSecond = {limits.Options.RequestsPerIpPerSecond}).");
            return;
        }

        if (context.Request.ContentLength > limits.Options.MaxRequestBodyBytes)
        {
            await RejectAsync(context, HttpStatusCode.RequestEntityTooLarge, "body_too_large",
                $"The request body is larger than the gateway's limit of {limits.Options.MaxRequestBodyBytes} bytes (Gateway:Limits:MaxRequestBodyBytes).");
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limits.Options.MaxRequestBodyBytes;
        }

        await next(context);
    }

    private async Task HubRequestAsync(HttpContext context, RoutedRequest.Kind kind, string ip)
    {
        // A new connection: negotiate (not its CORS preflight), or a WebSocket that skipped negotiation (no connection token yet).
        var opening = (kind == RoutedRequest.Kind.Negotiate && !HttpMethods.IsOptions(context.Request.Method))
            || (context.WebSockets.IsWebSocketRequest && !context.Request.Query.ContainsKey("id"));
        if (opening)
        {
            using var lease = limits.Connects.AttemptAcquire(ip);
            if (!lease.IsAcquired)
            {
                await RejectAsync(context, HttpStatusCode.TooManyRequests, "connect_rate",
                    $"Too many new connections from this address (Gateway:Limits:ConnectsPerIpPerSecond = {limits.Options.ConnectsPerIpPerSecond}).");
                return;
            }
        }

        // The requests that carry a connection: its WebSocket, or its SSE or long-polling GETs.
        var carrying = context.WebSockets.IsWebSocketRequest || (HttpMethods.IsGet(context.Request.Method) && context.Request.Query.ContainsKey("id"));
        if (!carrying)
        {
            await next(context);
            return;
        }

        using var slot = limits.TryOpenConnection(ip, out var reason);
        if (slot is null)
        {
            await (reason == RequestLimits.LimitReason.InstanceFull
                ? RejectAsync(context, HttpStatusCode.ServiceUnavailable, "connection_limit",
                    $"This instance holds all the connections it may (Gateway:Limits:MaxConnections = {limits.Options.MaxConnections}); retry to reach another one.")
                : RejectAsync(context, HttpStatusCode.TooManyRequests, "ip_connection_limit",
                    $"Too many connections from this address (Gateway:Limits:MaxConnectionsPerIp = {limits.Options.MaxConnectionsPerIp})."));
            return;
        }

        await next(context);
    }

    private async Task RejectAsync(HttpContext context, HttpStatusCode status, string reason, string message)
    {
        Log.Rejected(logger, reason, context.Connection.RemoteIpAddress);
        metrics.Rejected(reason);
        if (status is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
        }

        await ErrorResponse.WriteAsync(context, status, message);
    }

    private static partial class Log
    {
        [LoggerMessage(1201, LogLevel.Debug, "Rejected a request ({Reason}) from {Address}.", EventName = "RequestRejected")]
        public static partial void Rejected(ILogger logger, string reason, IPAddress? address);
    }
}
