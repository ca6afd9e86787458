using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// One hub <c>Predict</c> over its connection's Socket.IO session. TROM.AI streams per socket, not
/// per request, so the prediction's events are what the session receives between the capture's
/// start (queued before the POST) and its end (queued once the answer is in and a barrier sent
/// after it has come back over the socket: the answer can overtake the last events, which travel on
/// another connection). Whatever happens, the capture ends: after a timeout or a client that left,
/// only once TROM.AI has stopped the flow, so no late event of it reaches the connection's handlers.
/// </summary>
internal sealed partial class SocketIOPrediction(
    PredictionStreams calls,
    BridgedConnection connection,
    UpstreamSession session,
    Uri destination,
    string chatflowId,
    string chatId,
    TimeSpan activityTimeout,
    TimeProvider time,
    ILogger logger) : IDisposable
{
    // Long-polling has no barrier to tell that every event emitted before the answer has arrived
    // (nor has a socket that just dropped): give them this long instead.
    private static readonly TimeSpan PollingSettleTime = TimeSpan.FromMilliseconds(200);

    private readonly CancellationTokenSource _post = new();
    private Task<PredictionOutcome>? _outcome;
    private volatile bool _answered;

    public PredictionCapture Capture { get; } = new();

    /// <summary>TROM.AI's answer, or why there is none; complete once the capture's end marker is queued. Never faults.</summary>
    public Task<PredictionOutcome> Outcome => _outcome ?? throw new InvalidOperationException("The prediction has not started.");

    /// <summary>Starts capturing, then posts the prediction.</summary>
    public void Start(byte[] body)
    {
        connection.Relay.BeginCapture(Capture);
        _outcome = RunAsync(body);
    }

    /// <summary>
    /// The stream's reader has gone (the client cancelled, or left): aborts the flow upstream, waits
    /// a bounded time for TROM.AI's answer, and drops the prediction's events until the capture ends.
    /// </summary>
    public async Task WindDownAsync()
    {
        // Read first: a capture nobody reads would hold the relay, and with it the barrier behind the answer.
        var dropping = DropRestAsync();
        if (!_answered)
        {
            await calls.AbortAsync(connection.Caller, destination, chatflowId, chatId);
            try
            {
                // TROM.AI answers the POST once the aborted flow has stopped.
                await Outcome.WaitAsync(PredictionStreams.AbortTimeout, time);
            }
            catch (TimeoutException)
            {
                Log.NoAnswerAfterAbort(logger, chatflowId, chatId, PredictionStreams.AbortTimeout);
                await _post.CancelAsync();
            }
        }

        await dropping;
        await Outcome;
    }

    /// <summary>Once <see cref="Outcome"/> is complete.</summary>
    public void Dispose() => _post.Dispose();

    private async Task DropRestAsync()
    {
        await foreach (var _ in Capture.ReadAsync(CancellationToken.None))
        {
        }
    }

    private async Task<PredictionOutcome> RunAsync(byte[] body)
    {
        var outcome = default(PredictionOutcome);
        try
        {
            try
            {
                var (status, answer) = await calls.PostAsync(connection.Caller, destination, chatflowId, body, _post.Token);
                _answered = true;
                outcome = new PredictionOutcome(status, answer, null);
            }
            catch (OperationCanceledException) when (_post.IsCancellationRequested)
            {
                outcome = new PredictionOutcome(0, default, "The prediction was cancelled.");
            }
            catch (UpstreamTimeoutException)
            {
                // TROM.AI was silent for the activity timeout: the flow may still run upstream and emit to this socket.
                Log.PredictionTimedOut(logger, chatflowId, chatId, activityTimeout);
                outcome = new PredictionOutcome(0, default,
                    $"TROM.AI did not answer the prediction within {activityTimeout} (Gateway:Proxy:ActivityTimeout); the gateway aborted it.");
                await StopFlowAsync();
            }
            catch (HttpRequestException e)
            {
                // Possibly after the request went through (a connection reset mid-answer): stop it in case.
                Log.PostFailed(logger, chatflowId, e.Message);
                outcome = new PredictionOutcome(0, default, "TROM.AI is unreachable.");
                await StopFlowAsync();
            }

            await BarrierAsync();
        }
        catch (Exception e)
        {
            Log.PredictionFailed(logger, chatflowId, chatId, e);
            outcome = new PredictionOutcome(0, default, "The gateway could not complete the prediction.");
        }
        finally
        {
            connection.Relay.EndCapture(Capture);
        }

        return outcome;
    }

    /// <summary>Aborts the flow and waits, bounded, for TROM.AI's <c>abort</c> event: then it emits no more.</summary>
    private async Task StopFlowAsync()
    {
        var (status, _) = await calls.AbortAsync(connection.Caller, destination, chatflowId, chatId);
        if ((int)status is < 200 or >= 300)
        {
            return;
        }

        try
        {
            await Capture.AbortSeen.WaitAsync(PredictionStreams.AbortTimeout, time);
        }
        catch (TimeoutException)
        {
            Log.NoAbortEvent(logger, chatflowId, chatId, PredictionStreams.AbortTimeout);
        }
    }

    /// <summary>
    /// Waits until every event TROM.AI emitted to the socket before now has reached the relay. Bounded
    /// by <c>ActivityTimeout</c> only, not by a shorter time: the reply waits behind the events a slow
    /// client has not taken yet, and a client that takes nothing is cut off by the relay.
    /// </summary>
    private async Task BarrierAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(activityTimeout, time);
            if (await session.FlushAsync(timeout.Token))
            {
                return;
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            Log.BarrierFailed(logger, chatflowId, chatId, e.Message);
        }

        await Task.Delay(PollingSettleTime, time);
    }

    /// <param name="Error">Set when there is no answer to give: the stream ends with it as a HubException.</param>
    internal readonly record struct PredictionOutcome(HttpStatusCode Status, JsonElement Answer, string? Error);

    private static partial class Log
    {
        [LoggerMessage(3030, LogLevel.Warning, "Prediction {ChatId} of chatflow {ChatflowId} got no answer within {Timeout}; aborting it.", EventName = "PredictTimedOut")]
        public static partial void PredictionTimedOut(ILogger logger, string chatflowId, string chatId, TimeSpan timeout);

        [LoggerMessage(3031, LogLevel.Warning, "Posting a prediction of chatflow {ChatflowId} failed: {Reason}", EventName = "PredictPostFailed")]
        public static partial void PostFailed(ILogger logger, string chatflowId, string reason);

        [LoggerMessage(3032, LogLevel.Warning, "Aborted prediction {ChatId} of chatflow {ChatflowId} was not answered within {Timeout}; giving up on its answer.", EventName = "PredictNoAnswerAfterAbort")]
        public static partial void NoAnswerAfterAbort(ILogger logger, string chatflowId, string chatId, TimeSpan timeout);

        [LoggerMessage(3033, LogLevel.Warning, "Aborted prediction {ChatId} of chatflow {ChatflowId} sent no abort event within {Timeout}.", EventName = "PredictNoAbortEvent")]
        public static partial void NoAbortEvent(ILogger logger, string chatflowId, string chatId, TimeSpan timeout);

        [LoggerMessage(3034, LogLevel.Debug, "No barrier after prediction {ChatId} of chatflow {ChatflowId} ({Reason}); waiting a moment for its last events instead.", EventName = "PredictBarrierFailed")]
        public static partial void BarrierFailed(ILogger logger, string chatflowId, string chatId, string reason);

        [LoggerMessage(3035, LogLevel.Error, "Prediction {ChatId} of chatflow {ChatflowId} failed in the gateway.", EventName = "PredictFailed")]
        public static partial void PredictionFailed(ILogger logger, string chatflowId, string chatId, Exception exception);
    }
}
