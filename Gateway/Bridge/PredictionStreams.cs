using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Health;
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
    ILogger<PredictionStreams> logger)
{
    // Long-polling has no barrier to tell that every event emitted before the answer has arrived;
    // give them this long instead.
    private static readonly TimeSpan PollingSettleTime = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan AbortTimeout = TimeSpan.FromSeconds(10);

    public async IAsyncEnumerable<PredictionEvent> RunAsync(
        BridgedConnection connection, string chatflowId, JsonElement request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var running = drain.TrackPrediction(); // a drain lets it finish
        using var trace = Telemetry.GatewayActivity.StartPrediction(chatflowId); // the upstream call's span is its child
        var stream = connection.Session is { } session
            ? OverSocketIOAsync(connection, session, chatflowId, request, cancellationToken)
            : OverSseAsync(connection.Caller, chatflowId, request, cancellationToken);
        await foreach (var item in stream)
        {
            yield return item;
        }
    }

    private async IAsyncEnumerable<PredictionEvent> OverSocketIOAsync(
        BridgedConnection connection, UpstreamSession session, string chatflowId, JsonElement request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await connection.Predicting.WaitAsync(cancellationToken);
        var capture = Channel.CreateBounded<PredictionEvent>(new BoundedChannelOptions(options.Value.Relay.MaxBacklog) { SingleReader = true, SingleWriter = true });
        Uri? destination = null;
        string? chatId = null;
        var finished = false;
        try
        {
            var socketId = session.SocketId ?? throw new HubException(
                "The upstream session of this connection is reconnecting; retry once it has received gateway:upstream-restored.");
            destination = session.Destination!;
            (var body, chatId) = PrepareBody(request, body => body["socketIOClientId"] = socketId);

            connection.Relay.BeginCapture(capture.Writer);
            var post = PostAsync(connection.Caller, destination, chatflowId, body, cancellationToken);
            var events = capture.Reader;
            while (!post.IsCompleted)
            {
                await Task.WhenAny(events.WaitToReadAsync(cancellationToken).AsTask(), post);
                while (events.TryRead(out var item))
                {
                    yield return item;
                }
            }

            var (status, answer) = await post;

            // The answer can overtake the last events: they travel on another connection.
            if (!await session.FlushAsync(cancellationToken))
            {
                await Task.Delay(PollingSettleTime, cancellationToken);
            }

            await connection.Relay.DrainAsync().WaitAsync(cancellationToken);
            while (events.TryRead(out var item))
            {
                yield return item;
            }

            finished = true;
            yield return Result(status, answer);
        }
        finally
        {
            connection.Relay.EndCapture();
            if (!finished && cancellationToken.IsCancellationRequested && destination is not null && chatId is not null)
            {
                // The client cancelled the stream: stop the flow upstream too, not just our reading of it.
                await AbortAsync(connection.Caller, destination, chatflowId, chatId);
            }

            connection.Predicting.Release();
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
                await foreach (var item in SseEventReader.ReadAllAsync(await response.Content.ReadAsStreamAsync(cancellationToken),
                    reason => Log.SkippedBlock(logger, reason), cancellationToken: cancellationToken))
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

    /// <summary>
    /// Aborts a prediction of this connection, however it was started. Over SSE the replica running
    /// it is unknown, so every replica is asked (TROM.AI answers 200 whether or not anything ran).
    /// </summary>
    public async Task AbortAsync(BridgedConnection connection, string chatflowId, string chatId)
    {
        IReadOnlyList<Uri> replicas = connection.Session?.Destination is { } destination ? [destination] : destinations.Replicas;
        foreach (var (status, answer) in await Task.WhenAll(replicas.Select(replica => AbortAsync(connection.Caller, replica, chatflowId, chatId))))
        {
            if (!IsSuccess(status))
            {
                throw new HubException($"TROM.AI answered {(int)status} ({status}) to the abort: {MessageOf(answer)}");
            }
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Answer)> AbortAsync(UpstreamCaller caller, Uri destination, string chatflowId, string chatId)
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

    private async Task<(HttpStatusCode Status, JsonElement Answer)> PostAsync(UpstreamCaller caller, Uri destination, string chatflowId, byte[] body, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, UpstreamUrls.Combine(destination, $"api/v1/prediction/{Uri.EscapeDataString(chatflowId)}")) { Content = content };
            headers.Apply(request, caller);
            using var response = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, cancellationToken);
            return (response.StatusCode, await ReadAnswerAsync(response, cancellationToken));
        }
        catch (HttpRequestException e)
        {
            Log.PostFailed(logger, chatflowId, e.Message);
            throw new HubException("TROM.AI is unreachable.");
        }
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
    private static PredictionEvent Result(HttpStatusCode status, JsonElement answer) =>
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
        body["chatId"] = chatId;
        return (JsonSerializer.SerializeToUtf8Bytes(body), chatId);
    }

    private static bool IsSuccess(HttpStatusCode status) => (int)status is >= 200 and < 300;

    private static string MessageOf(JsonElement answer) =>
        answer.ValueKind == JsonValueKind.Object && answer.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String
            ? message.GetString()!
            : answer.ToString();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Aborting prediction {ChatId} of chatflow {ChatflowId} failed: {Reason}")]
        public static partial void AbortFailed(ILogger logger, string chatflowId, string chatId, string reason);

        [LoggerMessage(3, LogLevel.Warning, "Posting a prediction of chatflow {ChatflowId} failed: {Reason}")]
        public static partial void PostFailed(ILogger logger, string chatflowId, string reason);

        [LoggerMessage(2, LogLevel.Warning, "Skipped an unreadable SSE block from TROM.AI: {Reason}")]
        public static partial void SkippedBlock(ILogger logger, string reason);
    }
}
