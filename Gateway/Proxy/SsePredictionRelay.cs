using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A REST prediction for a hub connection, when TROM.AI streams over SSE: the gateway asks with
/// <c>"streaming": true</c>, sends each event to the connection as the Socket.IO era would have, and
/// answers the caller with the JSON it assembled (the tokens' text, plus what <c>metadata</c> carried).
/// Every event is kept in the prediction's stream, announced to the connection with a
/// <c>gateway:stream</c> notice before the first and closed with <c>gateway:stream-end</c>; the gateway
/// reads the answer to its end even when the caller or the connection goes away (an SSE-era TROM.AI
/// stops a flow whose stream is no longer read), for <c>Gateway:Streams:DetachedTimeout</c> at most.
/// </summary>
internal sealed partial class SsePredictionRelay(
    SsePredictions upstream, UpstreamHeaderPolicy headers, ISessionDirectory sessions, HubLifetimeManager<PredictionHub> clients,
    IStreamStore store, PredictionRuns runs, PredictionStreams calls, IOptions<GatewayOptions> options, TimeProvider time, ILogger<SsePredictionRelay> logger)
{
    /// <param name="connection">The hub connection named by the body.</param>
    /// <param name="start">The stream to keep the prediction in.</param>
    /// <param name="body">The rewritten prediction body; it may still be streaming from the client (multipart).</param>
    public async Task RelayAsync(HttpContext context, SessionLocation connection, string socketIOClientId, StreamStart start, HttpContent body)
    {
        var callerGone = context.RequestAborted;
        body.Headers.TryAddWithoutValidation("Content-Type", context.Request.ContentType);
        var caller = headers.CallerOf(context.Request);
        var prediction = new SseRestPrediction(store.Create(start), calls, caller, runs, options.Value.Streams.DetachedTimeout, time);
        using var detach = callerGone.Register(static state => ((SseRestPrediction)state!).Detach(), prediction);
        var reading = prediction.Reading;

        // A local connection gets the events through its relay queue (bounded, like Socket.IO
        // events); another instance's through the backplane.
        sessions.TryGetLocal(socketIOClientId, out var local);
        var target = new Target(local, connection.ConnectionId, clients, logger);
        try
        {
            await target.SendAsync(GatewayEvents.Stream, [new GatewayEvents.StreamNotice(start.StreamId, start.ChatflowId, start.ChatId)], reading);
            HttpResponseMessage response;
            try
            {
                Uri replica;
                (response, replica) = await upstream.PostAsync(context.Request.Path.Value!.TrimStart('/') + context.Request.QueryString, body, caller, reading);
                prediction.AskedAt(replica);
            }
            catch (UpstreamUnavailableException e) when (PredictionBodyException.BodyFailure(e) is { } cause)
            {
                // The client's body broke off or was malformed, not TROM.AI: the rewrite answers it.
                prediction.Stream.Fail(cause.Message);
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
                throw;
            }
            catch (UpstreamUnavailableException e)
            {
                prediction.Stream.Fail(e.Message);
                await AnswerAsync(context, () => ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, e.Message), callerGone);
                return;
            }

            using (response)
            {
                await RelayAsync(context, response, prediction, target, callerGone);
            }
        }
        catch (OperationCanceledException) when (reading.IsCancellationRequested)
        {
            // Cancelled (the detached timeout, a drain): its stream has ended already.
            await AnswerAsync(context, () => ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, "The gateway stopped the prediction."), callerGone);
        }
        finally
        {
            prediction.Stream.Fail("The gateway could not complete the prediction."); // unless it ended otherwise
            await target.SendAsync(GatewayEvents.StreamEnd, [new GatewayEvents.StreamEndNotice(start.StreamId, prediction.Stream.LastSeq)], CancellationToken.None);
            prediction.Done();
        }
    }

    private async Task RelayAsync(HttpContext context, HttpResponseMessage response, SseRestPrediction prediction, Target target, CancellationToken callerGone)
    {
        var stream = prediction.Stream;
        var reading = prediction.Reading;
        if (!SseEventReader.IsEventStream(response.Content.Headers.ContentType?.MediaType))
        {
            // A flow that cannot stream answers plain JSON, and errors are JSON too.
            var answer = await response.Content.ReadAsByteArrayAsync(reading);
            var ended = RestAnswer.Of(response.StatusCode, answer);
            if (ended.Error is { } refusal)
            {
                stream.Fail(refusal);
            }
            else
            {
                stream.Complete(ended.Answer);
            }

            await AnswerAsync(context, async () =>
            {
                context.Response.StatusCode = (int)response.StatusCode;
                context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
                await context.Response.Body.WriteAsync(answer, callerGone);
            }, callerGone);
            return;
        }

        var result = new SsePredictionResult();
        try
        {
            await foreach (var item in SseEventReader.ReadAllAsync(await response.Content.ReadAsStreamAsync(reading),
                reason => Log.SkippedBlock(logger, reason), cancellationToken: reading))
            {
                result.Add(item);
                var args = item.ToArguments();
                stream.Append(item.Event, args);
                await target.SendAsync(item.Event, args, reading); // waits while a local client's backlog is full
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !reading.IsCancellationRequested)
        {
            stream.Fail(e is UpstreamTimeoutException ? e.Message : "TROM.AI's stream broke off.");
            await AnswerAsync(context, () => ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, $"TROM.AI's stream broke off: {e.Message}"), callerGone);
            return;
        }

        if (result.IsError)
        {
            stream.Fail($"TROM.AI reported an error: {result.Error}");
            await AnswerAsync(context, () => ErrorResponse.WriteAsync(context, HttpStatusCode.InternalServerError, result.Error!), callerGone);
        }
        else if (!result.Ended && !result.Aborted)
        {
            stream.Fail("TROM.AI's stream ended before its end event.");
            await AnswerAsync(context, () => ErrorResponse.WriteAsync(context, HttpStatusCode.BadGateway, "TROM.AI's stream ended before its end event."), callerGone);
        }
        else
        {
            stream.Complete(KeptStream.Serialize(result.ToAnswer()));
            await AnswerAsync(context, async () =>
            {
                context.Response.ContentType = "application/json; charset=utf-8";
                await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
                result.WriteAnswer(writer);
            }, callerGone);
        }
    }

    /// <summary>Answers the REST caller, unless it has gone: the prediction was read to its end for its stream anyway.</summary>
    private static async Task AnswerAsync(HttpContext context, Func<Task> answer, CancellationToken callerGone)
    {
        if (callerGone.IsCancellationRequested || context.Response.HasStarted)
        {
            return;
        }

        try
        {
            await answer();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException && callerGone.IsCancellationRequested)
        {
        }
    }

    /// <summary>Where the events go: the local connection's relay, or the backplane. A connection that went away takes nothing, and the stream keeps everything.</summary>
    private sealed class Target(BridgedConnection? local, string connectionId, HubLifetimeManager<PredictionHub> clients, ILogger logger)
    {
        private bool _unreachable;

        public async Task SendAsync(string name, object?[] args, CancellationToken cancellationToken)
        {
            if (_unreachable)
            {
                return;
            }

            try
            {
                if (local is not null)
                {
                    await local.Relay.WriteAsync(name, args, cancellationToken);
                }
                else
                {
                    await clients.SendConnectionAsync(connectionId, name, args, cancellationToken);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The backplane cannot reach the connection (Redis down): its client resumes from the stream.
                _unreachable = true;
                Log.SendFailed(logger, connectionId, e.Message);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1111, LogLevel.Warning, "Skipped an unreadable SSE block from TROM.AI: {Reason}", EventName = "SseBlockSkipped")]
        public static partial void SkippedBlock(ILogger logger, string reason);

        [LoggerMessage(5040, LogLevel.Warning, "Events of a REST prediction cannot reach connection {ConnectionId} ({Reason}); they are kept in its stream.", EventName = "SseRestEventsUnreachable")]
        public static partial void SendFailed(ILogger logger, string connectionId, string reason);
    }
}
