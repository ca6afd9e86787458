using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The streaming mode in force: the configured one, or, for <c>Auto</c>, the one the upstream shows
/// when first asked. A failed probe is not remembered, so the next connection asks again.
/// </summary>
internal sealed class StreamingModeResolver(IOptions<GatewayOptions> options, IHttpClientFactory http, UpstreamDestinations destinations, UpstreamHeaderPolicy headers) : IDisposable
{
    private readonly SemaphoreSlim _probing = new(1, 1);
    private StreamingMode? _detected;

    public async ValueTask<StreamingMode> GetAsync(CancellationToken cancellationToken)
    {
        var upstream = options.Value.Upstream;
        if (upstream.Streaming != StreamingMode.Auto)
        {
            return upstream.Streaming;
        }

        if (_detected is { } known)
        {
            return known;
        }

        await _probing.WaitAsync(cancellationToken);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(upstream.ConnectTimeout);
            return _detected ??= await StreamingModeProbe.ProbeAsync(http.CreateClient(UpstreamHttp.ClientName), destinations.Replicas[0], request => headers.Apply(request, UpstreamCaller.Gateway), timeout.Token);
        }
        finally
        {
            _probing.Release();
        }
    }

    public void Dispose() => _probing.Dispose();
}
