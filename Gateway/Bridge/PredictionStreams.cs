using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The hub's one-call prediction: streams what TROM.AI emits for the question, ending with its
/// answer. Over Socket.IO, TROM.AI streams per socket, not per request, so one connection runs one
/// prediction at a time (a second <c>Predict</c> waits for the first); over SSE each prediction is
/// its own stream and they run side by side.
/// </summary>
internal sealed partial class PredictionStreams(
    IHttpClientFactory http,
    UpstreamHeaderPolicy headers,
    SsePredictions sse,
    UpstreamDestinations destinations,
    GatewayDrain drain,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<PredictionStreams> logger)
{
    internal static readonly TimeSpan AbortTimeout = TimeSpan.FromSeconds(10);

    public async IAsyncEnumerable<PredictionEvent> RunAsync(
        BridgedConnection connection, string chatflowId, JsonElement request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        RequirePathSegment(nameof(chatflowId), chatflowId);
        using var trace = Telemetry.GatewayActivity.StartPrediction(chatflowId); // the upstream call's span is its child
        var running = drain.TrackPrediction(); // a drain lets it finish
        if (connection.Session is not { } session)
        {
            using (running)
            {
                await foreach (var item in OverSseAsync(connection.Caller, chatflowId, request, cancellationToken))
                {
                    yield return item;
                }
            }

            yield break;
        }

        await foreach (var item in OverSocketIOAsync(connection, session, chatflowId, request, running, cancellationToken))
        {
            yield return item;
        }
    }

    /// <summary>
    /// Streams the prediction's capture until its end marker, then the answer (or the error). The
    /// stream reads one channel only, so it never stops reading while the answer and the barrier
    /// behind the last event make their way; when it ends early (the client cancelled or left), the
    /// prediction winds down on its own (<see cref="SocketIOPrediction.WindDownAsync"/>).
    /// </summary>
    private async IAsyncEnumerable<PredictionEvent> OverSocketIOAsync(
        BridgedConnection connection, UpstreamSession session, string chatflowId, JsonElement request,
        GatewayDrain.PredictionHandle running, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        SocketIOPrediction? prediction = null;
        try
        {
            await connection.Predicting.WaitAsync(cancellationToken);
            try
            {
                var socketId = session.SocketId ?? throw new HubException(
                    "The upstream session of this connection is reconnecting; retry once it has received gateway:upstream-restored.");
                var (body, chatId) = PrepareBody(request, body => body["socketIOClientId"] = socketId);
                prediction = new SocketIOPrediction(this, connection, session, session.Destination!, chatflowId, chatId, options.Value.Proxy.ActivityTimeout, time, logger);
                prediction.Start(body);
            }
            finally
            {
                if (prediction is null)
                {
                    connection.Predicting.Release();
                }
            }

            await foreach (var item in prediction.Capture.ReadAsync(cancellationToken))
            {
                yield return item;
            }

            if (!prediction.Capture.Ended)
            {
                throw new HubException("The connection closed before the prediction ended.");
            }

            var outcome = await prediction.Outcome;
            yield return outcome.Error is { } error ? throw new HubException(error) : Result(outcome.Status, outcome.Answer);
        }
        finally
        {
            if (prediction is null)
            {
                running.Dispose();
            }
            else if (prediction.Capture.Ended)
            {
                prediction.Dispose();
                connection.Predicting.Release();
                running.Dispose();
            }
            else
            {
                // The stream's reader is gone: stop the flow upstream and let no late event of it reach
                // the connection's handlers. The next Predict of this connection waits for that.
                _ = WindDownAsync(connection, prediction, running);
            }
        }
    }

    private static async Task WindDownAsync(BridgedConnection connection, SocketIOPrediction prediction, GatewayDrain.PredictionHandle running)
    {
        try
        {
            await prediction.WindDownAsync();
        }
        finally
        {
            prediction.Dispose();
            connection.Predicting.Release();
            running.Dispose();
        }
    }

    private async IAsyncEnumerable<PredictionEvent> OverSseAsync(UpstreamCaller caller, string chatflowId, JsonElement request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var (body, chatId) = PrepareBody(request, body =>
        {
            body.Remove("socketIOClientId");
            body["streaming"] = true;
        });
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        HttpResponseMessage response;
        Uri replica;
        try
        {
            (response, replica) = await sse.PostAsync($"api/v1/prediction/{Uri.EscapeDataString(chatflowId)}", content, caller, cancellationToken);
        }
        catch (UpstreamUnavailableException e)
        {
            throw new HubException(e.Message);
        }

        using (response)
        {
            if (!SseEventReader.IsEventStream(response.Content.Headers.ContentType?.MediaType))
            {
                // A flow that cannot stream answers plain JSON; errors do too.
                yield return Result(response.StatusCode, await ReadAnswerAsync(response, cancellationToken));
                yield break;
            }

            var result = new SsePredictionResult();
            var finished = false;
            try
            {
                await foreach (var item in TellingBreaks(SseEventReader.ReadAllAsync(await response.Content.ReadAsStreamAsync(cancellationToken),
                    reason => Log.SkippedBlock(logger, reason), cancellationToken: cancellationToken)))
                {
                    result.Add(item);
                    yield return PredictionEvent.From(item.Event, item.ToArguments());
                }

                finished = true;
            }
            finally
            {
                if (!finished && cancellationToken.IsCancellationRequested)
                {
                    await AbortAsync(caller, replica, chatflowId, chatId);
                }
            }

            if (result.IsError)
            {
                throw new HubException($"TROM.AI reported an error: {result.Error}");
            }

            if (!result.Ended && !result.Aborted)
            {
                throw new HubException("TROM.AI's stream ended before its end event.");
            }

            yield return new PredictionEvent(PredictionEvent.Result, result.ToAnswer());
        }
    }

    /// <summary>An SSE stream that breaks off or falls silent (<see cref="UpstreamTimeoutException"/>) ends Predict with a message the client can read.</summary>
    private static async IAsyncEnumerable<UpstreamSseEvent> TellingBreaks(IAsyncEnumerable<UpstreamSseEvent> events)
    {
        await using var reader = events.GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await reader.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (IOException e)
            {
                throw new HubException(e is UpstreamTimeoutException ? e.Message : "TROM.AI's stream broke off.");
            }

            yield return reader.Current;
        }
    }

    /// <summary>
    /// Aborts a prediction of this connection, however it was started. Over SSE the replica running
    /// it is unknown, so every replica is asked (TROM.AI answers 200 whether or not anything ran).
    /// </summary>
    public async Task AbortAsync(BridgedConnection connection, string chatflowId, string chatId)
    {
        RequirePathSegment(nameof(chatflowId), chatflowId);
        RequirePathSegment(nameof(chatId), chatId);
        IReadOnlyList<Uri> replicas = connection.Session?.Destination is { } destination ? [destination] : destinations.Replicas;
        foreach (var (status, answer) in await Task.WhenAll(replicas.Select(replica => AbortAsync(connection.Caller, replica, chatflowId, chatId))))
        {
            if (!IsSuccess(status))
            {
                throw new HubException($"TROM.AI answered {(int)status} ({status}) to the abort: {MessageOf(answer)}");
            }
        }
    }

    /// <summary>Asks TROM.AI to abort; never throws (a failure is logged and answered as 502).</summary>
    internal async Task<(HttpStatusCode Status, JsonElement Answer)> AbortAsync(UpstreamCaller caller, Uri destination, string chatflowId, string chatId)
    {
        using var timeout = new CancellationTokenSource(AbortTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Put,
                UpstreamUrls.Combine(destination, $"api/v1/chatmessage/abort/{Uri.EscapeDataString(chatflowId)}/{Uri.EscapeDataString(chatId)}"));
            headers.Apply(request, caller);
            using var response = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, timeout.Token);
            return (response.StatusCode, await ReadAnswerAsync(response, timeout.Token));
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            Log.AbortFailed(logger, chatflowId, chatId, e.Message);
            return (HttpStatusCode.BadGateway, JsonSerializer.SerializeToElement(new { message = "TROM.AI is unreachable." }));
        }
    }

    /// <summary>
    /// Posts the prediction and reads TROM.AI's answer. Throws <see cref="HttpRequestException"/> when
    /// TROM.AI cannot be reached, <see cref="UpstreamTimeoutException"/> when it is silent for
    /// <c>Gateway:Proxy:ActivityTimeout</c>, <see cref="OperationCanceledException"/> when the call is cancelled.
    /// </summary>
    internal async Task<(HttpStatusCode Status, JsonElement Answer)> PostAsync(UpstreamCaller caller, Uri destination, string chatflowId, byte[] body, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, UpstreamUrls.Combine(destination, $"api/v1/prediction/{Uri.EscapeDataString(chatflowId)}")) { Content = content };
        headers.Apply(request, caller);
        using var response = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, cancellationToken);
        return (response.StatusCode, await ReadAnswerAsync(response, cancellationToken));
    }

    private static async Task<JsonElement> ReadAnswerAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return JsonSerializer.SerializeToElement(text); // not JSON (a proxy's error page): pass it as a string
        }
    }

    /// <summary>The final item, or the HubException that ends the stream instead.</summary>
    internal static PredictionEvent Result(HttpStatusCode status, JsonElement answer) =>
        IsSuccess(status)
            ? new PredictionEvent(PredictionEvent.Result, answer)
            : throw new HubException($"TROM.AI answered {(int)status} ({status}): {MessageOf(answer)}");

    /// <summary>The body the client would have POSTed, adapted by <paramref name="adapt"/>, with a chatId so that it can be aborted.</summary>
    private static (byte[] Body, string ChatId) PrepareBody(JsonElement request, Action<JsonObject> adapt)
    {
        if (JsonNode.Parse(request.GetRawText()) is not JsonObject body)
        {
            throw new HubException("Predict's request must be a JSON object, the body of a TROM.AI prediction: {question, overrideConfig?, history?, uploads?, chatId?}.");
        }

        adapt(body);
        var chatId = body["chatId"] is JsonValue value && value.TryGetValue<string>(out var given) && given.Length > 0 ? given : Guid.NewGuid().ToString();
        RequirePathSegment(nameof(chatId), chatId); // it names the prediction in the abort's URL
        body["chatId"] = chatId;
        return (JsonSerializer.SerializeToUtf8Bytes(body), chatId);
    }

    private static bool IsSuccess(HttpStatusCode status) => (int)status is >= 200 and < 300;

    /// <summary>
    /// Refuses an id that would not stay one segment of TROM.AI's URL (<c>..</c> climbs to the web UI,
    /// <c>a/b</c> reaches another endpoint), before anything is sent.
    /// </summary>
    private static void RequirePathSegment(string name, string? id)
    {
        if (!UpstreamUrls.IsPathSegment(id))
        {
            throw new HubException(
                $"{name} must be one segment of a TROM.AI URL: not empty, not '.' or '..', without '/', '\\', '%' or control characters, at most 1024 characters.");
        }
    }

    private static string MessageOf(JsonElement answer) =>
        answer.ValueKind == JsonValueKind.Object && answer.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String
            ? message.GetString()!
            : answer.ToString();

    private static partial class Log
    {
        [LoggerMessage(3020, LogLevel.Warning, "Aborting prediction {ChatId} of chatflow {ChatflowId} failed: {Reason}", EventName = "PredictAbortFailed")]
        public static partial void AbortFailed(ILogger logger, string chatflowId, string chatId, string reason);

        [LoggerMessage(3021, LogLevel.Warning, "Skipped an unreadable SSE block from TROM.AI: {Reason}", EventName = "PredictSkippedSseBlock")]
        public static partial void SkippedBlock(ILogger logger, string reason);
    }
}
