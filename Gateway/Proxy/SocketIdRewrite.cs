using System.Net;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;
using Yarp.ReverseProxy.Model;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// On prediction routes, replaces a <c>socketIOClientId</c> that names one of this gateway's hub
/// connections with that connection's upstream socket id, in JSON and multipart bodies. Any other
/// body is forwarded as it came, so plain Socket.IO clients keep working through the gateway.
/// The connection may live on any gateway instance; the request then goes to the replica that holds
/// its socket, whatever load balancing would have chosen. When TROM.AI streams over SSE, such a
/// prediction is not forwarded: the gateway asks with <c>streaming: true</c> itself and relays the
/// stream to the connection (<see cref="SsePredictionRelay"/>).
/// A body is read into pooled memory once, within the instance's <see cref="BodyBudget"/>, and the
/// rewritten body is forwarded as slices of it (<see cref="ForwardedBody"/>); a multipart body only
/// up to its id, the rest streams through.
/// </summary>
internal sealed partial class SocketIdRewrite(
    RequestDelegate next, ISessionDirectory sessions, StreamingModeResolver modes, SsePredictionRelay sse, KeptRestForwarding kept, GatewayDrain drain,
    BodyBudget budget, GatewayMetrics metrics, IOptions<GatewayOptions> options, ILogger<SocketIdRewrite> logger)
{
    public const string MetadataKey = "TromAi.RewriteSocketId";

    /// <summary>The route parameter holding the chatflow id.</summary>
    public const string ChatflowIdParameter = "id";

    public async Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        if (route.Metadata?.ContainsKey(MetadataKey) != true || !HttpMethods.IsPost(context.Request.Method))
        {
            await next(context);
            return;
        }

        // Kestrel has already resolved dot segments; what is left must stay one segment upstream.
        if (!UpstreamUrls.IsPathSegment(context.GetRouteValue(ChatflowIdParameter) as string))
        {
            await RefuseAsync(context, new PredictionBodyException(HttpStatusCode.BadRequest, GatewayMetrics.RejectReason.InvalidBody,
                "The chatflow id must be one path segment: not empty, no '/', '\\', '%', control character or dot segment."));
            return;
        }

        using var running = drain.TrackPrediction(); // a drain lets it finish
        using var trace = GatewayActivity.StartPrediction(context.GetRouteValue("id") as string); // the proxied call's span is its child
        var contentType = context.Request.ContentType;
        var isJson = contentType is not null && MediaTypeHeaderValue.TryParse(contentType, out var media)
            && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase));
        var boundary = isJson ? null : MultipartBoundary(contentType);
        if (!isJson && boundary is null)
        {
            metrics.Rewrite(GatewayMetrics.RewriteOutcome.Unchanged);
            await next(context); // TROM.AI answers such bodies itself (it reads an empty question)
            return;
        }

        using var buffer = budget.Open();
        try
        {
            await RewriteAsync(context, buffer, boundary);
        }
        catch (PredictionBodyException e)
        {
            await RefuseAsync(context, e);
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own refusal while reading: the body passed the limit set below, or came too slowly.
            await RefuseAsync(context, PredictionBodyException.For(e, options.Value.Proxy.MaxPredictionBodyBytes));
        }
        catch (UpstreamUnavailableException e) when (!context.Response.HasStarted)
        {
            // auto's probe could not tell how TROM.AI streams (every replica down): the message has no address.
            metrics.Rejected(GatewayMetrics.RejectReason.UpstreamUnavailable);
            await ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, e.Message);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The client went away while sending: nobody is left to answer.
        }
    }

    private async Task RewriteAsync(HttpContext context, BufferedBody buffer, string? boundary)
    {
        var limit = options.Value.Proxy.MaxPredictionBodyBytes;
        var declared = context.Request.ContentLength;
        if (declared > limit)
        {
            throw PredictionBodyException.TooLarge(limit);
        }

        // The gateway's limit applies here: Kestrel counts it however the body comes (chunked, or
        // streamed on after a multipart id), and its own default (30 MB) would stop one the limit allows.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit;
        }

        var aborted = context.RequestAborted;
        if (boundary is null)
        {
            // JSON: all of it, since the last socketIOClientId counts. A declared length is reserved
            // before a byte is read, so a body that cannot fit costs nothing.
            if (declared is { } length && !buffer.TryReserve(length))
            {
                throw PredictionBodyException.OverBudget(budget.Limit);
            }

            await buffer.AppendAsync(context.Request.Body, declared, limit, aborted);
            var json = JsonPredictionBody.Read(buffer.Bytes);
            var lookup = json.ClientId is null ? RewriteResult.Unchanged : await ResolveAsync(context, json.ClientId);
            await ForwardAsync(context, lookup with { ChatId = json.ChatId }, lookup.Status switch
            {
                RewriteStatus.Rewritten => json.Rewritten(lookup.SocketId!),
                RewriteStatus.Streamed => json.Streamed(),
                _ => json.Unchanged(),
            }, tail: null);
            return;
        }

        if (boundary.Length > MultipartPredictionBody.MaxBoundaryLength)
        {
            throw PredictionBodyException.InvalidMultipart($"its boundary is longer than {MultipartPredictionBody.MaxBoundaryLength} characters.");
        }

        var multipart = await MultipartPredictionBody.ReadToClientIdAsync(boundary, context.Request.Body, buffer, limit, aborted);
        var result = multipart.ClientId is null ? RewriteResult.Unchanged : await ResolveAsync(context, multipart.ClientId);
        var (head, tail) = result.Status switch
        {
            RewriteStatus.Rewritten => multipart.Rewritten(result.SocketId!),
            RewriteStatus.Streamed => multipart.Streamed(),
            _ => multipart.Unchanged(),
        };
        await ForwardAsync(context, result, head, tail);
    }

    private async Task ForwardAsync(HttpContext context, RewriteResult result, List<ForwardedBody.Part> head, IAsyncEnumerable<ForwardedBody.Part>? tail)
    {
        metrics.Rewrite(result.Status switch
        {
            RewriteStatus.Rewritten => GatewayMetrics.RewriteOutcome.Rewritten,
            RewriteStatus.Reconnecting => GatewayMetrics.RewriteOutcome.Reconnecting,
            RewriteStatus.Streamed => GatewayMetrics.RewriteOutcome.Streamed,
            _ => GatewayMetrics.RewriteOutcome.Unchanged,
        });
        if (result.Status == RewriteStatus.DirectoryUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
            await ErrorResponse.WriteAsync(context, HttpStatusCode.ServiceUnavailable,
                "The gateway cannot look up this hub connection right now (its shared session directory is unavailable); retry shortly.");
            return;
        }

        if (result.Status == RewriteStatus.Reconnecting)
        {
            context.Response.Headers.RetryAfter = "1";
            await ErrorResponse.WriteAsync(context, HttpStatusCode.ServiceUnavailable,
                "The upstream session of this hub connection is reconnecting; retry once the connection has received gateway:upstream-restored.");
            return;
        }

        // Read from the pooled buffer while the request is forwarded; the buffer goes back to the pool
        // once the forward has returned, which is after the upstream request's body was sent or dropped.
        await using var forwarded = new ForwardedBody(head, tail, context.RequestAborted);
        var chatflowId = (string)context.GetRouteValue(ChatflowIdParameter)!;
        if (result.Status == RewriteStatus.Streamed)
        {
            using var content = new StreamContent(forwarded, BodyBudget.Step);
            content.Headers.ContentLength = forwarded.KnownLength;
            await sse.RelayAsync(context, result.Location, result.ClientId!, new StreamStart(StreamIds.New(), chatflowId, result.ChatId, result.Location.Owner), content);
            return;
        }

        if (result.Destination is not null)
        {
            PinDestination(context, result.Destination);
        }

        // A prediction for a hub connection is kept as a stream, which begins before the POST leaves.
        var stream = result.Status == RewriteStatus.Rewritten
            ? await kept.BeginAsync(result.ClientId!, result.Location, chatflowId, result.ChatId)
            : null;
        context.Request.Body = forwarded;
        context.Request.ContentLength = forwarded.KnownLength; // unknown: chunked
        context.Request.Headers.TransferEncoding = default;
        if (stream is null)
        {
            await next(context);
            return;
        }

        await kept.ForwardAsync(context, next, stream);
    }

    private async Task RefuseAsync(HttpContext context, PredictionBodyException refusal)
    {
        metrics.Rejected(refusal.Reason);
        Log.Refused(logger, (int)refusal.Status, refusal.Reason);
        if (context.Response.HasStarted)
        {
            return;
        }

        if (refusal.Status == HttpStatusCode.ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = "1";
        }

        await ErrorResponse.WriteAsync(context, refusal.Status, refusal.Message);
    }

    private static string? MultipartBoundary(string? contentType)
    {
        if (contentType is null || !MediaTypeHeaderValue.TryParse(contentType, out var media)
            || !media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var boundary = HeaderUtilities.RemoveQuotes(media.Boundary);
        return boundary.Length == 0 ? null : boundary.ToString();
    }

    /// <summary>Sends the request to the replica holding the session's socket: TROM.AI emits only to sockets it holds itself.</summary>
    private static void PinDestination(HttpContext context, Uri destination)
    {
        var proxy = context.GetReverseProxyFeature();
        foreach (var candidate in proxy.AllDestinations)
        {
            if (Uri.TryCreate(candidate.Model.Config.Address, UriKind.Absolute, out var address) && address == destination)
            {
                proxy.AvailableDestinations = [candidate];
                return;
            }
        }
    }

    private async ValueTask<RewriteResult> ResolveAsync(HttpContext context, string clientId)
    {
        var lookup = await sessions.FindAsync(clientId, context.RequestAborted);
        if (lookup.Status == SessionLookupStatus.Unavailable && SocketIOClientIds.IsGatewayId(clientId))
        {
            return new RewriteResult(RewriteStatus.DirectoryUnavailable, null, null);
        }

        // Not ours (a plain Socket.IO client's id, or a stale one), or, with authentication on, a
        // connection of another principal: forwarded untouched, so nothing reaches that connection.
        if (lookup.Status != SessionLookupStatus.Found
            || (options.Value.Auth.Enabled && lookup.Location.Owner != ConnectionOwner.Of(context.User)))
        {
            return RewriteResult.Unchanged;
        }

        var location = lookup.Location;
        if (await modes.GetAsync(context.RequestAborted) == StreamingMode.Sse)
        {
            return new RewriteResult(RewriteStatus.Streamed, null, null) { Location = location, ClientId = clientId };
        }

        return location.SocketId is null
            ? new RewriteResult(RewriteStatus.Reconnecting, null, null)
            : new RewriteResult(RewriteStatus.Rewritten, location.SocketId, location.Destination) { Location = location, ClientId = clientId };
    }

    private enum RewriteStatus
    {
        Unchanged,
        Rewritten,
        Reconnecting,
        Streamed,
        DirectoryUnavailable,
    }

    private sealed record RewriteResult(RewriteStatus Status, string? SocketId, Uri? Destination)
    {
        /// <summary>The hub connection named (rewritten or streamed): where it is, and the id the client sent.</summary>
        public SessionLocation Location { get; init; }

        public string? ClientId { get; init; }

        /// <summary>The body's <c>chatId</c>, when the gateway could read it (JSON).</summary>
        public string? ChatId { get; init; }

        public static readonly RewriteResult Unchanged = new(RewriteStatus.Unchanged, null, null);
    }

    private static partial class Log
    {
        // The status and a fixed reason only: the body, its headers and its boundary are the client's.
        [LoggerMessage(1101, LogLevel.Debug, "Refused a prediction body with {Status} ({Reason}).", EventName = "PredictionBodyRefused")]
        public static partial void Refused(ILogger logger, int status, string reason);
    }
}
