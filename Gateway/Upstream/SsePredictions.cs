using System.Net.Http.Headers;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Predictions against an SSE-era TROM.AI (2.1 and later), where the response to a prediction
/// asked with <c>"streaming": true</c> is itself the event stream.
/// </summary>
internal sealed class SsePredictions(IHttpClientFactory http, UpstreamDestinations destinations, UpstreamHeaderPolicy headers)
{
    /// <summary>Posts to the next replica; the response's body is read as it streams.</summary>
    /// <param name="pathAndQuery">The prediction path, e.g. <c>api/v1/prediction/{id}</c>.</param>
    public async Task<(HttpResponseMessage Response, Uri Replica)> PostAsync(
        string pathAndQuery, HttpContent content, UpstreamCaller caller, CancellationToken cancellationToken)
    {
        var replica = destinations.Next();
        using var request = new HttpRequestMessage(HttpMethod.Post, UpstreamUrls.Combine(replica, pathAndQuery)) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        headers.Apply(request, caller);

        try
        {
            return (await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken), replica);
        }
        catch (HttpRequestException e)
        {
            throw new UpstreamUnavailableException("TROM.AI is unreachable.", e); // the cause names the address: not for clients
        }
        catch (UpstreamTimeoutException e)
        {
            throw new UpstreamUnavailableException(e.Message, e);
        }
    }
}
