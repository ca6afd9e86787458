using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The streaming mode in force: the configured one, or, for <c>Auto</c> (the default), the one the upstream
/// shows when first asked, logged once with what it answered. A failed probe is not remembered, so the next
/// connection asks again. What a client reads never names an address; the log does.
/// </summary>
internal sealed partial class StreamingModeResolver(
    IOptions<GatewayOptions> options,
    IHttpClientFactory http,
    UpstreamDestinations destinations,
    UpstreamHeaderPolicy headers,
    ILogger<StreamingModeResolver> logger) : IDisposable
{
    private readonly SemaphoreSlim _probing = new(1, 1);
    private readonly Lock _gate = new();
    private StreamingMode? _detected;

    /// <summary>The mode, or why it cannot be known now.</summary>
    /// <exception cref="UpstreamUnavailableException"><c>auto</c>'s probe got no conclusive answer (the message is for clients).</exception>
    public async ValueTask<StreamingMode> GetAsync(CancellationToken cancellationToken) =>
        await TryGetAsync(cancellationToken) ?? throw new UpstreamUnavailableException(
            $"could not tell how TROM.AI streams ({StreamingModeMismatch.Setting}=auto): it is unreachable or answered neither as Engine.IO nor as a web page "
            + "(the gateway's log says which). Set it to socketio or sse to skip the probe.");

    /// <summary>
    /// The mode; null when <c>auto</c>'s probe got no conclusive answer but the upstream may still answer a
    /// Socket.IO connect (unreachable for now, a 5xx, a proxy's refusal): a hub connection then tries one, and
    /// its answer decides (<see cref="Learn"/>).
    /// </summary>
    /// <exception cref="UpstreamUnavailableException">The probe got no answer within <c>Gateway:Upstream:ConnectTimeout</c>.</exception>
    public async ValueTask<StreamingMode?> TryGetAsync(CancellationToken cancellationToken)
    {
        var upstream = options.Value.Upstream;
        if (upstream.Streaming != StreamingMode.Auto)
        {
            return upstream.Streaming;
        }

        if (Detected is { } known)
        {
            return known;
        }

        await _probing.WaitAsync(cancellationToken);
        try
        {
            if (Detected is { } learned)
            {
                return learned;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(upstream.ConnectTimeout);
            // Every replica runs the same TROM.AI: the first that answers clearly speaks for all, one that is down does not.
            foreach (var replica in destinations.Replicas)
            {
                try
                {
                    var answer = await StreamingModeProbe.ProbeWithEvidenceAsync(
                        http.CreateClient(UpstreamHttp.ClientName), replica, request => headers.Apply(request, UpstreamCaller.Gateway), timeout.Token);
                    Learn(answer.Mode, answer.Evidence);
                    return answer.Mode;
                }
                catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
                {
                    Log.ProbeInconclusive(logger, $"no answer from {replica} within {upstream.ConnectTimeout}");
                    throw new UpstreamUnavailableException(
                        $"could not tell how TROM.AI streams ({StreamingModeMismatch.Setting}=auto): no answer within {upstream.ConnectTimeout.TotalSeconds:0.###} s.", e);
                }
                catch (UpstreamUnavailableException e)
                {
                    Log.ProbeInconclusive(logger, e.Message); // names the address: the log's, not the client's
                }
            }

            return null;
        }
        finally
        {
            _probing.Release();
        }
    }

    /// <summary>Records what <c>auto</c> found out (the first finding wins), and logs it once.</summary>
    /// <param name="evidence">What the upstream answered; no address.</param>
    public void Learn(StreamingMode mode, string evidence)
    {
        lock (_gate)
        {
            if (_detected is not null)
            {
                return;
            }

            _detected = mode;
        }

        Log.Chosen(logger, StreamingModeMismatch.Setting, mode, evidence);
    }

    private StreamingMode? Detected
    {
        get
        {
            lock (_gate)
            {
                return _detected;
            }
        }
    }

    public void Dispose() => _probing.Dispose();

    private static partial class Log
    {
        [LoggerMessage(3074, LogLevel.Information, "{Setting}=auto chose {Mode}: {Evidence}.", EventName = "StreamingModeChosen")]
        public static partial void Chosen(ILogger logger, string setting, StreamingMode mode, string evidence);

        [LoggerMessage(3075, LogLevel.Warning, "Could not tell how TROM.AI streams yet: {Reason}", EventName = "StreamingModeProbeInconclusive")]
        public static partial void ProbeInconclusive(ILogger logger, string reason);
    }
}
