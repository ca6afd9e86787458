using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Gives the gateway's own calls to TROM.AI the meaning <c>Gateway:Proxy:ActivityTimeout</c> has for
/// the proxied ones (YARP's): the longest TROM.AI may stay silent, waiting for the response or between
/// two reads of its body, not the length of the whole exchange. <see cref="HttpClient.Timeout"/> would
/// cut a long answer that streams steadily, and, once the headers are in, leave a stalled stream
/// hanging forever. The client's own timeout is therefore infinite.
/// </summary>
internal sealed class ActivityTimeoutHandler(IOptions<GatewayOptions> options) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var timeout = options.Value.Proxy.ActivityTimeout;
        var activity = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        activity.CancelAfter(timeout);
        HttpResponseMessage response;
        try
        {
            response = await base.SendAsync(request, activity.Token);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            activity.Dispose();
            throw new UpstreamTimeoutException(timeout, e);
        }
        catch
        {
            activity.Dispose();
            throw;
        }

        var body = new StreamContent(new ActivityTimeoutStream(await response.Content.ReadAsStreamAsync(cancellationToken), activity, timeout));
        foreach (var header in response.Content.Headers)
        {
            body.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        response.Content = body; // disposing the response disposes the original content's stream through ours
        return response;
    }

    /// <summary>A response body whose every read must bring something within the timeout.</summary>
    private sealed class ActivityTimeoutStream(Stream inner, CancellationTokenSource activity, TimeSpan timeout) : ReadOnlyStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            activity.CancelAfter(timeout); // the silence is counted from this read on
            using var caller = cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), activity);
            try
            {
                return await inner.ReadAsync(buffer, activity.Token);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new UpstreamTimeoutException(timeout, e);
            }
            catch (OperationCanceledException e) when (e.CancellationToken != cancellationToken)
            {
                throw new OperationCanceledException(e.Message, e, cancellationToken); // the caller's cancel, told as such
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                activity.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
