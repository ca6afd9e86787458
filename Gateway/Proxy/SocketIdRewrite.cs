using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Health;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;
using Yarp.ReverseProxy.Model;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// On prediction routes, replaces a <c>socketIOClientId</c> that names one of this gateway's hub
/// connections with that connection's upstream socket id, in JSON and multipart bodies. Any other
/// body is forwarded byte for byte, so plain Socket.IO clients keep working through the gateway.
/// The connection may live on any gateway instance; the request then goes to the replica that holds
/// its socket, whatever load balancing would have chosen. When TROM.AI streams over SSE, such a
/// prediction is not forwarded: the gateway asks with <c>streaming: true</c> itself and relays the
/// stream to the connection (<see cref="SsePredictionRelay"/>).
/// </summary>
internal sealed class SocketIdRewrite(
    RequestDelegate next, ISessionDirectory sessions, StreamingModeResolver modes, SsePredictionRelay sse, GatewayDrain drain, GatewayMetrics metrics, IOptions<GatewayOptions> options)
{
    public const string MetadataKey = "TromAi.RewriteSocketId";
    private const string FieldName = "socketIOClientId";
    private const string StreamingField = "streaming";

    public async Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        if (route.Metadata?.ContainsKey(MetadataKey) != true || !HttpMethods.IsPost(context.Request.Method))
        {
            await next(context);
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

        var limit = options.Value.Proxy.MaxPredictionBodyBytes;
        var body = await ReadBodyAsync(context, limit);
        if (body is null)
        {
            metrics.Rejected(GatewayMetrics.RejectReason.BodyTooLarge);
            await ErrorResponse.WriteAsync(context, HttpStatusCode.RequestEntityTooLarge,
                $"The prediction body is larger than the gateway's limit of {limit} bytes (Gateway:Proxy:MaxPredictionBodyBytes).");
            return;
        }

        RewriteResult result;
        try
        {
            result = isJson ? await RewriteJsonAsync(context, body) : await RewriteMultipartAsync(context, body, boundary!);
        }
        catch (JsonException e)
        {
            metrics.Rejected(GatewayMetrics.RejectReason.InvalidBody);
            await ErrorResponse.WriteAsync(context, HttpStatusCode.BadRequest, $"The prediction body is not valid JSON: {e.Message}");
            return;
        }
        catch (IOException e)
        {
            metrics.Rejected(GatewayMetrics.RejectReason.InvalidBody);
            await ErrorResponse.WriteAsync(context, HttpStatusCode.BadRequest, $"The prediction body is not valid multipart/form-data: {e.Message}");
            return;
        }

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

        var forwarded = result.Body ?? body;
        if (result.Status == RewriteStatus.Streamed)
        {
            await sse.RelayAsync(context, result.ConnectionId!, result.ClientId!, forwarded);
            return;
        }

        if (result.Destination is not null)
        {
            PinDestination(context, result.Destination);
        }

        context.Request.Body = new MemoryStream(forwarded, writable: false);
        context.Request.ContentLength = forwarded.Length;
        context.Request.Headers.TransferEncoding = default;
        await next(context);
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

    /// <summary>Reads the whole body, or returns null as soon as it passes <paramref name="limit"/>.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpContext context, long limit)
    {
        var declared = context.Request.ContentLength;
        if (declared > limit)
        {
            return null;
        }

        // The gateway's limit applies here, counted below; Kestrel's own cap (30 MB) would otherwise
        // stop a body that the limit allows, or answer 413 without saying why.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = null;
        }

        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(declared ?? 16 * 1024, limit) + 1);
        var source = context.Request.Body;
        int read;
        while ((read = await source.ReadAsync(buffer.GetMemory(16 * 1024), context.RequestAborted)) > 0)
        {
            buffer.Advance(read);
            if (buffer.WrittenCount > limit)
            {
                return null;
            }
        }

        return buffer.WrittenSpan.ToArray();
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

    private async Task<RewriteResult> RewriteJsonAsync(HttpContext context, byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object
            || !root.TryGetProperty(FieldName, out var id) || id.ValueKind != JsonValueKind.String)
        {
            return RewriteResult.Unchanged;
        }

        var lookup = await ResolveAsync(context, id.GetString()!);
        return lookup.Status is RewriteStatus.Rewritten or RewriteStatus.Streamed ? lookup with { Body = ReplaceField(root, body.Length, lookup) } : lookup;
    }

    /// <summary>The body with <c>socketIOClientId</c> naming the upstream socket, or, to stream over SSE, replaced by <c>"streaming": true</c>.</summary>
    private static byte[] ReplaceField(JsonElement root, int length, RewriteResult lookup)
    {
        var output = new ArrayBufferWriter<byte>(length + 32);
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            foreach (var property in root.EnumerateObject())
            {
                if (property.NameEquals(FieldName))
                {
                    if (lookup.Status == RewriteStatus.Streamed)
                    {
                        writer.WriteBoolean(StreamingField, true);
                    }
                    else
                    {
                        writer.WriteString(FieldName, lookup.SocketId);
                    }
                }
                else if (lookup.Status == RewriteStatus.Streamed && property.NameEquals(StreamingField))
                {
                    continue; // written in socketIOClientId's place
                }
                else
                {
                    property.WriteTo(writer);
                }
            }

            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Multipart bodies are rebuilt section by section with the same boundary; only the
    /// <c>socketIOClientId</c> field's value changes. Files pass through as the bytes they were.
    /// </summary>
    private async Task<RewriteResult> RewriteMultipartAsync(HttpContext context, byte[] body, string boundary)
    {
        var sections = new List<(MultipartSection Section, byte[] Content)>();
        var reader = new MultipartReader(boundary, new MemoryStream(body, writable: false)) { BodyLengthLimit = null };
        RewriteResult lookup = RewriteResult.Unchanged;
        int? rewritten = null;
        while (await reader.ReadNextSectionAsync(context.RequestAborted) is { } section)
        {
            using var content = new MemoryStream();
            await section.Body.CopyToAsync(content, context.RequestAborted);
            if (rewritten is null && IsField(section, FieldName))
            {
                lookup = await ResolveAsync(context, Encoding.UTF8.GetString(content.GetBuffer(), 0, (int)content.Length));
                if (lookup.Status is RewriteStatus.Reconnecting or RewriteStatus.DirectoryUnavailable)
                {
                    return lookup;
                }

                if (lookup.Status is RewriteStatus.Rewritten or RewriteStatus.Streamed)
                {
                    rewritten = sections.Count;
                }
            }

            sections.Add((section, content.ToArray()));
        }

        if (sections.Count == 0)
        {
            throw new IOException("it has no sections.");
        }

        if (rewritten is null)
        {
            return RewriteResult.Unchanged;
        }

        var output = new MemoryStream(body.Length + 32);
        for (var i = 0; i < sections.Count; i++)
        {
            var (section, content) = sections[i];
            if (lookup.Status == RewriteStatus.Streamed && i != rewritten && IsField(section, StreamingField))
            {
                continue; // written in socketIOClientId's place
            }

            WriteAscii(output, $"--{boundary}\r\n");
            if (i == rewritten && lookup.Status == RewriteStatus.Streamed)
            {
                WriteAscii(output, $"Content-Disposition: form-data; name=\"{StreamingField}\"\r\n\r\ntrue\r\n");
                continue;
            }

            foreach (var header in section.Headers!)
            {
                foreach (var value in header.Value)
                {
                    output.Write(Encoding.UTF8.GetBytes($"{header.Key}: {value}\r\n"));
                }
            }

            WriteAscii(output, "\r\n");
            output.Write(i == rewritten ? Encoding.UTF8.GetBytes(lookup.SocketId!) : content);
            WriteAscii(output, "\r\n");
        }

        WriteAscii(output, $"--{boundary}--\r\n");
        return lookup with { Body = output.ToArray() };
    }

    private static bool IsField(MultipartSection section, string name) =>
        ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
        && disposition.IsFormDisposition() && disposition.Name.Equals(name, StringComparison.Ordinal);

    private static void WriteAscii(Stream output, string text) => output.Write(Encoding.ASCII.GetBytes(text));

    private async ValueTask<RewriteResult> ResolveAsync(HttpContext context, string clientId)
    {
        var lookup = await sessions.FindAsync(clientId, context.RequestAborted);
        if (lookup.Status == SessionLookupStatus.Unavailable && SocketIOClientIds.IsGatewayId(clientId))
        {
            return new RewriteResult(RewriteStatus.DirectoryUnavailable, null, null, null);
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
            return new RewriteResult(RewriteStatus.Streamed, null, null, null) { ConnectionId = location.ConnectionId, ClientId = clientId };
        }

        return location.SocketId is null
            ? new RewriteResult(RewriteStatus.Reconnecting, null, null, null)
            : new RewriteResult(RewriteStatus.Rewritten, location.SocketId, location.Destination, null);
    }

    private enum RewriteStatus
    {
        Unchanged,
        Rewritten,
        Reconnecting,
        Streamed,
        DirectoryUnavailable,
    }

    private sealed record RewriteResult(RewriteStatus Status, string? SocketId, Uri? Destination, byte[]? Body)
    {
        /// <summary>The hub connection to stream to (SSE mode): its SignalR id, and the id the client sent.</summary>
        public string? ConnectionId { get; init; }

        public string? ClientId { get; init; }

        public static readonly RewriteResult Unchanged = new(RewriteStatus.Unchanged, null, null, null);
    }
}
