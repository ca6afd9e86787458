using System.IO.Compression;
using System.Net;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using Yarp.ReverseProxy.Forwarder;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A REST prediction for a hub connection while TROM.AI streams over Socket.IO, forwarded so that its
/// stream is kept: the stream begins before the POST leaves, the POST runs to TROM.AI's answer even when
/// its caller goes away (a reload: TROM.AI would emit into nothing and the answer would be lost), and the
/// answer ends the stream. The stream is recorded where the connection lives, since its events arrive
/// there: here, or on another instance, which this one tells when to begin and how the POST ended
/// (<see cref="IRemoteRestStreams"/>). When that instance cannot be reached in time the prediction is
/// forwarded as before, unkept: keeping it is never a reason to fail it.
/// </summary>
internal sealed partial class KeptRestForwarding(
    ISessionDirectory sessions,
    RestStreams local,
    IRemoteRestStreams remote,
    IHostApplicationLifetime lifetime,
    IOptions<GatewayOptions> options,
    ILogger<KeptRestForwarding> logger)
{
    /// <summary>Begins the stream where the connection lives; null when it cannot be kept (the prediction is then forwarded as before).</summary>
    public async Task<KeptRest?> BeginAsync(string socketIOClientId, SessionLocation location, string chatflowId, string? chatId)
    {
        if (sessions.TryGetLocal(socketIOClientId, out var connection))
        {
            return local.Begin(connection, chatflowId, chatId) is { } start ? new KeptRest(start.StreamId, null) : null;
        }

        // Not the caller's token: a caller that goes while the other instance answers leaves a POST that must still run.
        return location.Instance is { } instance
            && await remote.BeginAsync(instance, socketIOClientId, chatflowId, chatId, lifetime.ApplicationStopping) is { } streamId
            ? new KeptRest(streamId, instance)
            : null;
    }

    /// <summary>Forwards the request (the proxy's next step), copying the answer, and ends the stream with it.</summary>
    public async Task ForwardAsync(HttpContext context, RequestDelegate next, KeptRest kept)
    {
        var callerGone = context.RequestAborted;
        var limit = options.Value.Streams.MaxBytesPerStream;
        var capture = new ResponseCapture(context.Response.Body, limit, callerGone);
        context.Response.Body = capture;

        // The proxy gives up on the upstream call when the caller goes; this one must run to its answer.
        // Only a stopping host ends it early, and TROM.AI answers it once the flow is aborted.
        context.RequestAborted = lifetime.ApplicationStopping;
        var answer = RestAnswer.Failed("The gateway could not forward the prediction.");
        try
        {
            await next(context);
            answer = AnswerOf(context, capture, limit);
        }
        finally
        {
            await EndAsync(kept, answer);
        }
    }

    private async Task EndAsync(KeptRest kept, RestAnswer answer)
    {
        try
        {
            await (kept.Instance is { } instance ? remote.EndAsync(instance, kept.StreamId, answer) : local.EndAsync(kept.StreamId, answer));
        }
        catch (Exception e)
        {
            Log.EndFailed(logger, kept.StreamId, e);
        }
    }

    private static RestAnswer AnswerOf(HttpContext context, ResponseCapture capture, long limit)
    {
        if (context.GetForwarderErrorFeature() is { } failure)
        {
            return RestAnswer.Failed(failure.Error is ForwarderError.RequestTimedOut
                ? "TROM.AI did not answer the prediction in time (Gateway:Proxy:ActivityTimeout)."
                : $"The prediction could not be forwarded to TROM.AI ({failure.Error}).");
        }

        if (capture.Overflowed)
        {
            return RestAnswer.Failed($"The answer was larger than {limit} bytes (Gateway:Streams:MaxBytesPerStream), so it was not kept; its REST caller got it.");
        }

        var encoding = context.Response.Headers.ContentEncoding.ToString();
        if (encoding.Length == 0 || encoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return RestAnswer.Of((HttpStatusCode)context.Response.StatusCode, capture.Body);
        }

        return Decode(encoding, capture.Body, limit) is { } decoded
            ? RestAnswer.Of((HttpStatusCode)context.Response.StatusCode, decoded)
            : RestAnswer.Failed($"The answer came encoded as '{encoding}', which the gateway cannot decode within {limit} bytes (Gateway:Streams:MaxBytesPerStream), so it was not kept.");
    }

    /// <summary>The body TROM.AI compressed, decoded within <paramref name="limit"/>; null for another encoding, a larger body or a broken one.</summary>
    private static byte[]? Decode(string encoding, ReadOnlyMemory<byte> body, long limit)
    {
        using var compressed = new MemoryStream(body.ToArray());
        using Stream? decoder = encoding.ToLowerInvariant() switch
        {
            "gzip" => new GZipStream(compressed, CompressionMode.Decompress),
            "br" => new BrotliStream(compressed, CompressionMode.Decompress),
            "deflate" => new ZLibStream(compressed, CompressionMode.Decompress),
            _ => null,
        };
        if (decoder is null)
        {
            return null;
        }

        using var decoded = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = decoder.Read(buffer)) > 0)
            {
                if (decoded.Length + read > limit)
                {
                    return null;
                }

                decoded.Write(buffer, 0, read);
            }
        }
        catch (InvalidDataException)
        {
            return null;
        }

        return decoded.ToArray();
    }

    /// <param name="Instance">The instance recording the stream when it is another one; null for this one.</param>
    internal sealed record KeptRest(string StreamId, string? Instance);

    private static partial class Log
    {
        [LoggerMessage(5030, LogLevel.Warning, "Could not report the end of REST stream {StreamId}; its resumers will see it end when its instance gives up on it.", EventName = "RestStreamEndFailed")]
        public static partial void EndFailed(ILogger logger, string streamId, Exception exception);
    }
}
