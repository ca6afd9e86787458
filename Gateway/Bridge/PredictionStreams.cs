using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The hub's one-call prediction and its resume: streams what TROM.AI emits for the question, ending
/// with its answer, through the prediction's kept stream. Over Socket.IO, TROM.AI streams per socket,
/// not per request, so one connection runs one prediction at a time (a second <c>Predict</c> waits for
/// the first); over SSE each prediction is its own stream and they run side by side.
/// </summary>
internal sealed partial class PredictionStreams(
    IHttpClientFactory http,
    UpstreamHeaderPolicy headers,
    SsePredictions sse,
    UpstreamDestinations destinations,
    IStreamStore store,
    PredictionRuns runs,
    GatewayDrain drain,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<PredictionStreams> logger)
{
    internal static readonly TimeSpan AbortTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Starts the prediction, then streams its stream: the <c>gateway:stream</c> header with the stream's
    /// id, each event as it is kept, then the answer. The prediction runs on its own: when the stream's
    /// reader goes because its client cancelled, it is aborted; when it goes because the connection
    /// ended (<paramref name="connectionAborted"/>), it runs on, kept for a resume.
    /// </summary>
    public async IAsyncEnumerable<PredictionEvent> RunAsync(
        BridgedConnection connection, string chatflowId, JsonElement request, CancellationToken connectionAborted,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        RequirePathSegment(nameof(chatflowId), chatflowId);
        var prediction = connection.Session is { } session
            ? await StartOverSocketIOAsync(connection, session, chatflowId, request, cancellationToken)
            : StartOverSse(connection, chatflowId, request);
        var readToEnd = false;
        try
        {
            await foreach (var item in prediction.Stream.ReadAsync(0, cancellationToken))
            {
                yield return ToEvent(item);
            }

            readToEnd = true;
        }
        finally
        {
            if (!readToEnd)
            {
                // SignalR cancels a stream both for a CancelInvocation and for a connection that ended:
                // only the first is the client's wish to stop.
                if (cancellationToken.IsCancellationRequested && !connectionAborted.IsCancellationRequested)
                {
                    prediction.Cancel(StreamErrors.Cancelled);
                }
                else
                {
                    prediction.Detach();
                }
            }
        }
    }

    /// <summary>
    /// A kept stream, from any instance: its header, every kept event after <paramref name="afterSeq"/>,
    /// then the live rest, then the answer. Cancelling it stops the reading only, never the prediction.
    /// </summary>
    public async IAsyncEnumerable<PredictionEvent> ResumeAsync(
        BridgedConnection connection, string streamId, long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (afterSeq < 0)
        {
            throw StreamErrors.BadAfterSeq(afterSeq);
        }

        if (!StreamIds.IsStreamId(streamId))
        {
            throw StreamErrors.Unknown(streamId, options.Value.Streams.Retention);
        }

        await foreach (var item in store.ReadAsync(streamId, afterSeq, connection.Owner, options.Value.Auth.Enabled, cancellationToken))
        {
            yield return ToEvent(item);
        }
    }

    /// <summary>Waits for the connection's running <c>Predict</c>, if any (TROM.AI streams per socket), then starts this one.</summary>
    private async Task<KeptPrediction> StartOverSocketIOAsync(
        BridgedConnection connection, UpstreamSession session, string chatflowId, JsonElement request, CancellationToken cancellationToken)
    {
        await connection.Predicting.WaitAsync(cancellationToken);
        try
        {
            var socketId = session.SocketId ?? throw new HubException(
                "The upstream session of this connection is reconnecting; retry once it has received gateway:upstream-restored.");
            var hold = connection.TryHold() ?? throw new HubException("The connection closed before the prediction started.");
            var (body, chatId) = PrepareBody(request, body => body["socketIOClientId"] = socketId);
            var stream = store.Create(new StreamStart(StreamIds.New(), chatflowId, chatId, connection.Owner));
            var prediction = new SocketIOPrediction(this, connection, session, session.Destination!, chatflowId, chatId,
                stream, hold, drain.TrackPrediction(), runs, options.Value, time, logger);
            prediction.Start(body);
            return prediction;
        }
        catch
        {
            connection.Predicting.Release();
            throw;
        }
    }

    private SsePrediction StartOverSse(BridgedConnection connection, string chatflowId, JsonElement request)
    {
        var (body, chatId) = PrepareBody(request, body =>
        {
            body.Remove("socketIOClientId");
            body["streaming"] = true;
        });
        var stream = store.Create(new StreamStart(StreamIds.New(), chatflowId, chatId, connection.Owner));
        var prediction = new SsePrediction(this, sse, connection.Caller, chatflowId, chatId, stream, drain.TrackPrediction(), runs, options.Value, time, logger);
        prediction.Start(body);
        return prediction;
    }

    /// <summary>A kept item as the hub streams it.</summary>
    internal static PredictionEvent ToEvent(in StreamItem item) => item.Kind switch
    {
        StreamItemKind.Header => new PredictionEvent(GatewayEvents.Stream,
            new GatewayEvents.StreamNotice(item.Start!.StreamId, item.Start.ChatflowId, item.Start.ChatId)),
        StreamItemKind.Result => new PredictionEvent(PredictionEvent.Result, new RawJson(item.Json)) { Seq = item.Seq },
        _ => new PredictionEvent(item.Name!, DataOf(item.Json)) { Seq = item.Seq },
    };

    /// <summary>
    /// An event's data from its kept arguments (one JSON array, which the gateway wrote itself): null
    /// for none, the one argument, or the array of them; each a slice of the kept bytes, not a copy.
    /// </summary>
    private static object? DataOf(ReadOnlyMemory<byte> arguments)
    {
        var reader = new Utf8JsonReader(arguments.Span);
        reader.Read(); // [
        List<object?>? several = null;
        RawJson? first = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            var value = new RawJson(arguments[start..(int)reader.BytesConsumed]);
            if (first is null)
            {
                first = value;
            }
            else
            {
                (several ??= [first]).Add(value);
            }
        }

        return several is not null ? several.ToArray() : first;
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

    internal static async Task<JsonElement> ReadAnswerAsync(HttpResponseMessage response, CancellationToken cancellationToken)
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

    /// <summary>Null for an answer; for an HTTP error, what the stream ends with instead.</summary>
    internal static string? ErrorOf(HttpStatusCode status, JsonElement answer) =>
        IsSuccess(status) ? null : $"TROM.AI answered {(int)status} ({status}): {MessageOf(answer)}";

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

    }
}
