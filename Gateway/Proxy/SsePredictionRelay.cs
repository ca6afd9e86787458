using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A REST prediction for a hub connection, when TROM.AI streams over SSE: the gateway asks with
/// <c>"streaming": true</c>, sends each event to the connection as the Socket.IO era would have, and
/// answers the caller with the JSON it assembled (the tokens' text, plus what <c>metadata</c> carried).
/// </summary>
internal sealed partial class SsePredictionRelay(
    SsePredictions upstream, UpstreamHeaderPolicy headers, ISessionDirectory sessions, HubLifetimeManager<PredictionHub> clients, ILogger<SsePredictionRelay> logger)
{
    /// <param name="body">The rewritten prediction body; it may still be streaming from the client (multipart).</param>
    public async Task RelayAsync(HttpContext context, string connectionId, string socketIOClientId, HttpContent body)
    {
        var aborted = context.RequestAborted;
        body.Headers.TryAddWithoutValidation("Content-Type", context.Request.ContentType);
        HttpResponseMessage response;
        try
        {
            (response, _) = await upstream.PostAsync(context.Request.Path.Value!.TrimStart('/') + context.Request.QueryString, body, headers.CallerOf(context.Request), aborted);
        }
        catch (UpstreamUnavailableException e) when (PredictionBodyException.BodyFailure(e) is { } cause)
        {
            // The client's body broke off or was malformed, not TROM.AI: the rewrite answers it.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
            throw;
        }
        catch (UpstreamUnavailableException e)
        {
            await ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, e.Message);
            return;
        }

        using (response)
        {
            if (!SseEventReader.IsEventStream(response.Content.Headers.ContentType?.MediaType))
            {
                await PassThroughAsync(context, response); // a flow that cannot stream answers JSON, and errors are JSON too
                return;
            }

            // A local connection gets the events through its relay queue (bounded, like Socket.IO
            // events); another instance's through the backplane.
            sessions.TryGetLocal(socketIOClientId, out var local);
            var result = new SsePredictionResult();
            try
            {
                await foreach (var item in SseEventReader.ReadAllAsync(await response.Content.ReadAsStreamAsync(aborted),
                    reason => Log.SkippedBlock(logger, reason), cancellationToken: aborted))
                {
                    result.Add(item);
                    if (local is not null)
                    {
                        await local.Relay.WriteAsync(item.Event, item.ToArguments(), aborted); // waits while the client's backlog is full
                    }
                    else
                    {
                        await clients.SendConnectionAsync(connectionId, item.Event, item.ToArguments(), aborted);
                    }
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException && !aborted.IsCancellationRequested)
            {
                await ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, $"TROM.AI's stream broke off: {e.Message}");
                return;
            }

            if (result.IsError)
            {
                await ErrorResponse.WriteAsync(context, HttpStatusCode.InternalServerError, result.Error!);
            }
            else if (!result.Ended && !result.Aborted)
            {
                await ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, "TROM.AI's stream ended before its end event.");
            }
            else
            {
                context.Response.ContentType = "application/json; charset=utf-8";
                await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
                result.WriteAnswer(writer);
            }
        }
    }

    private static async Task PassThroughAsync(HttpContext context, HttpResponseMessage response)
    {
        context.Response.StatusCode = (int)response.StatusCode;
        context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(1111, LogLevel.Warning, "Skipped an unreadable SSE block from TROM.AI: {Reason}", EventName = "SseBlockSkipped")]
        public static partial void SkippedBlock(ILogger logger, string reason);
    }
}
