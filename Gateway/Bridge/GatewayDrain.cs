using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Graceful shutdown, run on SIGTERM by the host's <c>DrainingLifetime</c> before the host begins to
/// stop (SignalR closes every connection as soon as it does), so the instance still answers while it drains: <c>/readyz</c> turns 503 at once and new hub
/// connections are refused; running predictions get up to <c>Gateway:Drain:Timeout</c> to finish;
/// then every connection is told <c>gateway:draining</c> and closed (SignalR's close message with
/// <c>allowReconnect</c>, then a normal WebSocket close), so its client reconnects, through the load
/// balancer, to another instance. The drain completes once those connections have closed: the host
/// stops next, and would cut a close still under way.
/// </summary>
internal sealed partial class GatewayDrain(ISessionDirectory sessions, PredictionRuns runs, IStreamStore streams, IOptions<GatewayOptions> options, ILogger<GatewayDrain> logger)
{
    // For each of the notice's send and the connection's close: a client that does not read gets neither in time.
    private static readonly TimeSpan NoticeTimeout = TimeSpan.FromSeconds(2);
    private readonly Lock _gate = new();
    private int _predictions;
    private TaskCompletionSource? _idle;
    private volatile bool _draining;

    public bool IsDraining => _draining;

    /// <summary>Counts a running prediction until the returned handle is disposed.</summary>
    public PredictionHandle TrackPrediction()
    {
        lock (_gate)
        {
            _predictions++;
        }

        return new PredictionHandle(this);
    }

    private void PredictionEnded()
    {
        lock (_gate)
        {
            if (--_predictions == 0)
            {
                _idle?.TrySetResult();
            }
        }
    }

    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        _draining = true;
        Task idle;
        lock (_gate)
        {
            _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_predictions == 0)
            {
                _idle.TrySetResult();
            }

            idle = _idle.Task;
        }

        var timeout = options.Value.Drain.Timeout;
        Log.Draining(logger, _predictions, sessions.LocalCount, timeout);
        try
        {
            await idle.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            Log.PredictionsCutOff(logger, _predictions);
        }
        catch (OperationCanceledException)
        {
        }

        // Predictions kept for clients that went away run to here at most: their streams end with why,
        // and with Redis every stream is written there before the process goes, for a resume elsewhere.
        await runs.CancelAllAsync("The gateway instance running the prediction shut down before its answer was complete (Gateway:Drain:Timeout); ask again.", NoticeTimeout);
        await streams.FlushAsync(NoticeTimeout);

        var notice = new GatewayEvents.DrainingNotice("This gateway instance is shutting down; reconnect to reach another one.");
        await Task.WhenAll(sessions.LocalConnections.Select(connection => connection.Relay.CloseAsync(GatewayEvents.Draining, notice, NoticeTimeout)));
    }

    internal readonly struct PredictionHandle(GatewayDrain drain) : IDisposable
    {
        public void Dispose() => drain.PredictionEnded();
    }

    private static partial class Log
    {
        [LoggerMessage(3050, LogLevel.Information, "Draining: {Predictions} prediction(s) running, {Connections} connection(s); waiting up to {Timeout}.", EventName = "DrainStarted")]
        public static partial void Draining(ILogger logger, int predictions, int connections, TimeSpan timeout);

        [LoggerMessage(3051, LogLevel.Warning, "Drain timeout reached with {Predictions} prediction(s) still running; closing connections.", EventName = "DrainCutOff")]
        public static partial void PredictionsCutOff(ILogger logger, int predictions);
    }
}
