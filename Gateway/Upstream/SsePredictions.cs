using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Predictions against an SSE-era TROM.AI (2.1 and later), where the response to a prediction
/// asked with <c>"streaming": true</c> is itself the event stream.
/// </summary>
internal sealed partial class SsePredictions(
    IHttpClientFactory http, UpstreamDestinations destinations, UpstreamHeaderPolicy headers, IOptions<GatewayOptions> options, ILogger<SsePredictions> logger)
{
    /// <summary>Posts to the next replica; the response's body is read as it streams.</summary>
    /// <param name="pathAndQuery">The prediction path, e.g. <c>api/v1/prediction/{id}</c>.</param>
    /// <exception cref="UpstreamUnavailableException">
    /// TROM.AI is unreachable, or <c>Gateway:Upstream:Streaming</c> is <c>sse</c> and TROM.AI does not stream that way (the message says what to set).
    /// </exception>
    public async Task<(HttpResponseMessage Response, Uri Replica)> PostAsync(
        string pathAndQuery, HttpContent content, UpstreamCaller caller, CancellationToken cancellationToken)
    {
        var replica = destinations.Next();
        using var request = new HttpRequestMessage(HttpMethod.Post, UpstreamUrls.Combine(replica, pathAndQuery)) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        headers.Apply(request, caller);

        HttpResponseMessage response;
        try
        {
            response = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new UpstreamUnavailableException("TROM.AI is unreachable.", e); // the cause names the address: not for clients
        }
        catch (UpstreamTimeoutException e)
        {
            throw new UpstreamUnavailableException(e.Message, e);
        }

        if (await IgnoredStreamingAsync(response, replica, pathAndQuery, caller, cancellationToken) is { } mismatch)
        {
            response.Dispose();
            Log.NotStreamedOverSse(logger, mismatch);
            throw new UpstreamUnavailableException(mismatch);
        }

        return (response, replica);
    }

    /// <summary>
    /// With <c>sse</c> set explicitly (auto chooses it only for a TROM.AI without Socket.IO), a successful plain-JSON
    /// answer to <c>"streaming": true</c> is either a flow that cannot stream or a TROM.AI before 2.1, which ignores
    /// the flag and streams over Socket.IO only. <c>chatflows-streaming</c> tells them apart; it is asked only then.
    /// </summary>
    /// <returns>The mismatch message, or null when the answer is what it seems (or the question gets no clear answer).</returns>
    private async Task<string?> IgnoredStreamingAsync(HttpResponseMessage response, Uri replica, string pathAndQuery, UpstreamCaller caller, CancellationToken cancellationToken)
    {
        if (options.Value.Upstream.Streaming != StreamingMode.Sse || !response.IsSuccessStatusCode
            || SseEventReader.IsEventStream(response.Content.Headers.ContentType?.MediaType)
            || ChatflowId(pathAndQuery) is not { } chatflowId)
        {
            return null;
        }

        try
        {
            using var question = new HttpRequestMessage(HttpMethod.Get, UpstreamUrls.Combine(replica, $"api/v1/chatflows-streaming/{Uri.EscapeDataString(chatflowId)}"));
            headers.Apply(question, caller);
            using var answer = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(question, cancellationToken);
            return answer.IsSuccessStatusCode
                && await answer.Content.ReadFromJsonAsync<JsonElement>(cancellationToken) is { ValueKind: JsonValueKind.Object } streaming
                && streaming.TryGetProperty("isStreaming", out var can) && can.ValueKind == JsonValueKind.True
                    ? StreamingModeMismatch.NoSse(chatflowId)
                    : null;
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or NotSupportedException or UpstreamTimeoutException)
        {
            return null; // no clear answer: the JSON answer is passed on as it is
        }
    }

    /// <summary>The chatflow of <c>api/v1/prediction/{id}</c> (query aside); null for another shape.</summary>
    private static string? ChatflowId(string pathAndQuery)
    {
        var path = pathAndQuery.Split('?', 2)[0];
        var id = path[(path.LastIndexOf('/') + 1)..];
        return id.Length > 0 ? Uri.UnescapeDataString(id) : null;
    }

    private static partial class Log
    {
        [LoggerMessage(3076, LogLevel.Warning, "{Mismatch}", EventName = "StreamingModeMismatch")]
        public static partial void NotStreamedOverSse(ILogger logger, string mismatch);
    }
}
