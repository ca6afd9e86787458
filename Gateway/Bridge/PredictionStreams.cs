using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The hub's one-call prediction: posts the question for the caller's own upstream session and
/// streams what the upstream emits, ending with its answer. TROM.AI streams per socket, not per
/// request, so one connection runs one prediction at a time; a second <c>Predict</c> waits for the first.
/// </summary>
internal sealed partial class PredictionStreams(IHttpClientFactory http, IOptions<GatewayOptions> options, ILogger<PredictionStreams> logger)
{
    public const string HttpClientName = "tromai";

    // Long-polling has no barrier to tell that every event emitted before the answer has arrived;
    // give them this long instead.
    private static readonly TimeSpan PollingSettleTime = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan AbortTimeout = TimeSpan.FromSeconds(10);

    public async IAsyncEnumerable<PredictionEvent> RunAsync(
        BridgedConnection connection, string chatflowId, JsonElement request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await connection.Predicting.WaitAsync(cancellationToken);
        var capture = Channel.CreateBounded<PredictionEvent>(new BoundedChannelOptions(options.Value.Relay.MaxBacklog) { SingleReader = true, SingleWriter = true });
        Uri? destination = null;
        string? chatId = null;
        var finished = false;
        try
        {
            var session = connection.Session;
            var socketId = session.SocketId ?? throw new HubException(
                "The upstream session of this connection is reconnecting; retry once it has received gateway:upstream-restored.");
            destination = session.Destination!;
            (var body, chatId) = PrepareBody(request, socketId);

            connection.Relay.BeginCapture(capture.Writer);
            var post = PostAsync(destination, chatflowId, body, cancellationToken);
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
            if (!IsSuccess(status))
            {
                throw new HubException($"TROM.AI answered {(int)status} ({status}): {MessageOf(answer)}");
            }

            yield return new PredictionEvent(PredictionEvent.Result, answer);
        }
        finally
        {
            connection.Relay.EndCapture();
            if (!finished && cancellationToken.IsCancellationRequested && destination is not null && chatId is not null)
            {
                // The client cancelled the stream: stop the flow upstream too, not just our reading of it.
                await AbortAsync(destination, chatflowId, chatId);
            }

            connection.Predicting.Release();
        }
    }

    /// <summary>Aborts a prediction of this connection's session, however it was started.</summary>
    public async Task AbortAsync(BridgedConnection connection, string chatflowId, string chatId)
    {
        var destination = connection.Session.Destination ?? options.Value.Upstream.Replicas[0];
        var (status, answer) = await AbortAsync(destination, chatflowId, chatId);
        if (!IsSuccess(status))
        {
            throw new HubException($"TROM.AI answered {(int)status} ({status}) to the abort: {MessageOf(answer)}");
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Answer)> AbortAsync(Uri destination, string chatflowId, string chatId)
    {
        using var timeout = new CancellationTokenSource(AbortTimeout);
        try
        {
            using var response = await http.CreateClient(HttpClientName).PutAsync(
                UpstreamUrls.Combine(destination, $"api/v1/chatmessage/abort/{Uri.EscapeDataString(chatflowId)}/{Uri.EscapeDataString(chatId)}"),
                content: null, timeout.Token);
            return (response.StatusCode, await ReadAnswerAsync(response, timeout.Token));
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            Log.AbortFailed(logger, chatflowId, chatId, e.Message);
            return (HttpStatusCode.BadGateway, JsonSerializer.SerializeToElement(new { message = $"TROM.AI is unreachable: {e.Message}" }));
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Answer)> PostAsync(Uri destination, string chatflowId, byte[] body, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        try
        {
            using var response = await http.CreateClient(HttpClientName).PostAsync(
                UpstreamUrls.Combine(destination, $"api/v1/prediction/{Uri.EscapeDataString(chatflowId)}"), content, cancellationToken);
            return (response.StatusCode, await ReadAnswerAsync(response, cancellationToken));
        }
        catch (HttpRequestException e)
        {
            throw new HubException($"TROM.AI is unreachable: {e.Message}");
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

    /// <summary>The body the client would have POSTed, for our session's socket, with a chatId so that it can be aborted.</summary>
    private static (byte[] Body, string ChatId) PrepareBody(JsonElement request, string socketId)
    {
        if (JsonNode.Parse(request.GetRawText()) is not JsonObject body)
        {
            throw new HubException("Predict's request must be a JSON object, the body of a TROM.AI prediction: {question, overrideConfig?, history?, uploads?, chatId?}.");
        }

        body["socketIOClientId"] = socketId;
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
    }
}
