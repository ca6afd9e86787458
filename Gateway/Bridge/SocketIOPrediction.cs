using System.Diagnostics;
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
/// another connection). Every captured event is kept in the prediction's stream, which its client
/// reads (and any resumer); the prediction holds the session open until the capture has ended, after
/// its client has gone too. Whatever happens, the capture ends: after a timeout or a cancel, only once
/// TROM.AI has stopped the flow, so no late event of it reaches the connection's handlers.
/// </summary>
internal sealed partial class SocketIOPrediction : KeptPrediction
{
    // Long-polling has no barrier to tell that every event emitted before the answer has arrived
    // (nor has a socket that just dropped): give them this long instead.
    private static readonly TimeSpan PollingSettleTime = TimeSpan.FromMilliseconds(200);

    private readonly PredictionStreams _calls;
    private readonly BridgedConnection _connection;
    private readonly UpstreamSession _session;
    private readonly Uri _destination;
    private readonly string _chatflowId;
    private readonly string _chatId;
    private readonly IDisposable _hold;
    private readonly GatewayDrain.PredictionHandle _running;
    private readonly TimeSpan _activityTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _post = new();
    private Task<PredictionOutcome>? _outcome;
    private Activity? _trace;
    private volatile bool _answered;

    /// <param name="hold">Keeps the session open until the prediction is over (<see cref="BridgedConnection.TryHold"/>).</param>
    /// <param name="running">Counts the prediction for a drain until it is over.</param>
    public SocketIOPrediction(
        PredictionStreams calls, BridgedConnection connection, UpstreamSession session, Uri destination, string chatflowId, string chatId,
        IStreamWriter stream, IDisposable hold, GatewayDrain.PredictionHandle running, PredictionRuns runs, GatewayOptions options, TimeProvider time, ILogger logger)
        : base(stream, runs, options.Streams.DetachedTimeout, time)
    {
        _calls = calls;
        _connection = connection;
        _session = session;
        _destination = destination;
        _chatflowId = chatflowId;
        _chatId = chatId;
        _hold = hold;
        _running = running;
        _activityTimeout = options.Proxy.ActivityTimeout;
        _time = time;
        _logger = logger;
    }

    public PredictionCapture Capture { get; } = new();

    /// <summary>Starts capturing, then posts the prediction; keeps what comes in its stream until it is over.</summary>
    public void Start(byte[] body)
    {
        var caller = Activity.Current;
        _trace = Telemetry.GatewayActivity.StartPrediction(_chatflowId); // the upstream call's span is its child
        _connection.Relay.BeginCapture(Capture);
        _outcome = RunAsync(body);
        _ = KeepAsync();
        Activity.Current = caller; // the span belongs to the prediction, which may outlive the hub call
    }

    /// <summary>Moves the captured events into the stream until the capture ends, then ends the stream with the answer.</summary>
    private async Task KeepAsync()
    {
        try
        {
            await foreach (var captured in Capture.ReadAsync(CancellationToken.None))
            {
                Stream.Append(captured.Name, captured.Args);
            }

            var outcome = await _outcome!;
            if (!Capture.Ended)
            {
                Stream.Fail("The connection's upstream session closed before the prediction ended.");
            }
            else if (outcome.Error is { } error)
            {
                Stream.Fail(error);
            }
            else if (PredictionStreams.ErrorOf(outcome.Status, outcome.Answer) is { } refusal)
            {
                Stream.Fail(refusal);
            }
            else
            {
                Stream.Complete(KeptStream.Serialize(outcome.Answer));
            }
        }
        catch (Exception e)
        {
            Log.PredictionFailed(_logger, _chatflowId, _chatId, e);
            Stream.Fail("The gateway could not complete the prediction.");
        }
        finally
        {
            _trace?.Dispose();
            _connection.Predicting.Release();
            _running.Dispose();
            _hold.Dispose();
            Finish();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _post.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// Cancelled (by its client, the detached timeout or a drain): aborts the flow upstream and waits a
    /// bounded time for TROM.AI's answer; what it captures until then goes into the ended stream, i.e. nowhere.
    /// </summary>
    protected override void OnCancelled() => _ = WindDownAsync();

    private async Task WindDownAsync()
    {
        if (_answered)
        {
            return;
        }

        await _calls.AbortAsync(_connection.Caller, _destination, _chatflowId, _chatId);
        try
        {
            // TROM.AI answers the POST once the aborted flow has stopped.
            await _outcome!.WaitAsync(PredictionStreams.AbortTimeout, _time);
        }
        catch (TimeoutException)
        {
            Log.NoAnswerAfterAbort(_logger, _chatflowId, _chatId, PredictionStreams.AbortTimeout);
            try
            {
                await _post.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
                // It answered meanwhile.
            }
        }
    }

    private async Task<PredictionOutcome> RunAsync(byte[] body)
    {
        var outcome = default(PredictionOutcome);
        try
        {
            try
            {
                var (status, answer) = await _calls.PostAsync(_connection.Caller, _destination, _chatflowId, body, _post.Token);
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
                Log.PredictionTimedOut(_logger, _chatflowId, _chatId, _activityTimeout);
                outcome = new PredictionOutcome(0, default,
                    $"TROM.AI did not answer the prediction within {_activityTimeout} (Gateway:Proxy:ActivityTimeout); the gateway aborted it.");
                await StopFlowAsync();
            }
            catch (HttpRequestException e)
            {
                // Possibly after the request went through (a connection reset mid-answer): stop it in case.
                Log.PostFailed(_logger, _chatflowId, e.Message);
                outcome = new PredictionOutcome(0, default, "TROM.AI is unreachable.");
                await StopFlowAsync();
            }

            await BarrierAsync();
        }
        catch (Exception e)
        {
            Log.PredictionFailed(_logger, _chatflowId, _chatId, e);
            outcome = new PredictionOutcome(0, default, "The gateway could not complete the prediction.");
        }
        finally
        {
            _connection.Relay.EndCapture(Capture);
        }

        return outcome;
    }

    /// <summary>Aborts the flow and waits, bounded, for TROM.AI's <c>abort</c> event: then it emits no more.</summary>
    private async Task StopFlowAsync()
    {
        var (status, _) = await _calls.AbortAsync(_connection.Caller, _destination, _chatflowId, _chatId);
        if ((int)status is < 200 or >= 300)
        {
            return;
        }

        try
        {
            await Capture.AbortSeen.WaitAsync(PredictionStreams.AbortTimeout, _time);
        }
        catch (TimeoutException)
        {
            Log.NoAbortEvent(_logger, _chatflowId, _chatId, PredictionStreams.AbortTimeout);
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
            using var timeout = new CancellationTokenSource(_activityTimeout, _time);
            if (await _session.FlushAsync(timeout.Token))
            {
                return;
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            Log.BarrierFailed(_logger, _chatflowId, _chatId, e.Message);
        }

        await Task.Delay(PollingSettleTime, _time);
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
