using System.Diagnostics;
using System.Text.Json;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// One hub <c>Predict</c> when TROM.AI streams over SSE: the gateway asks with <c>streaming: true</c> and
/// keeps every event of the answer in the prediction's stream, reading on after its client has gone
/// (an SSE-era TROM.AI stops a flow whose stream is no longer read).
/// </summary>
internal sealed partial class SsePrediction : KeptPrediction
{
    private readonly PredictionStreams _calls;
    private readonly SsePredictions _sse;
    private readonly UpstreamCaller _caller;
    private readonly string _chatflowId;
    private readonly string _chatId;
    private readonly GatewayDrain.PredictionHandle _running;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _reading = new();
    private Uri? _replica;
    private Activity? _trace;

    public SsePrediction(
        PredictionStreams calls, SsePredictions sse, UpstreamCaller caller, string chatflowId, string chatId,
        IStreamWriter stream, GatewayDrain.PredictionHandle running, PredictionRuns runs, GatewayOptions options, TimeProvider time, ILogger logger)
        : base(stream, runs, options.Streams.DetachedTimeout, time)
    {
        _calls = calls;
        _sse = sse;
        _caller = caller;
        _chatflowId = chatflowId;
        _chatId = chatId;
        _running = running;
        _logger = logger;
    }

    public void Start(byte[] body)
    {
        var caller = Activity.Current;
        _trace = Telemetry.GatewayActivity.StartPrediction(_chatflowId);
        _ = RunAsync(body);
        Activity.Current = caller; // the span belongs to the prediction, which may outlive the hub call
    }

    private async Task RunAsync(byte[] body)
    {
        var reading = _reading.Token;
        try
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            HttpResponseMessage response;
            try
            {
                (response, _replica) = await _sse.PostAsync($"api/v1/prediction/{Uri.EscapeDataString(_chatflowId)}", content, _caller, reading);
            }
            catch (UpstreamUnavailableException e)
            {
                Stream.Fail(e.Message);
                return;
            }

            if (IsCancelled)
            {
                await AbortUpstreamAsync(); // cancelled while asking: the replica is known only now
            }

            using (response)
            {
                if (!SseEventReader.IsEventStream(response.Content.Headers.ContentType?.MediaType))
                {
                    // A flow that cannot stream answers plain JSON; errors do too.
                    var answer = await PredictionStreams.ReadAnswerAsync(response, reading);
                    End(PredictionStreams.ErrorOf(response.StatusCode, answer), answer);
                    return;
                }

                var result = new SsePredictionResult();
                await foreach (var item in SseEventReader.ReadAllAsync(await response.Content.ReadAsStreamAsync(reading),
                    reason => Log.SkippedBlock(_logger, reason), cancellationToken: reading))
                {
                    result.Add(item);
                    Stream.Append(item.Event, item.ToArguments());
                }

                if (result.IsError)
                {
                    Stream.Fail($"TROM.AI reported an error: {result.Error}");
                }
                else if (!result.Ended && !result.Aborted)
                {
                    Stream.Fail("TROM.AI's stream ended before its end event.");
                }
                else
                {
                    End(null, result.ToAnswer());
                }
            }
        }
        catch (OperationCanceledException) when (reading.IsCancellationRequested)
        {
            // Cancelled: its stream has ended already.
        }
        catch (UpstreamTimeoutException e)
        {
            Stream.Fail(e.Message); // names the setting
            await AbortUpstreamAsync(); // silent is not finished: the flow may still run
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            Stream.Fail("TROM.AI's stream broke off.");
        }
        catch (Exception e)
        {
            Log.Failed(_logger, _chatflowId, _chatId, e);
            Stream.Fail("The gateway could not complete the prediction.");
        }
        finally
        {
            _trace?.Dispose();
            _running.Dispose();
            Finish();
        }
    }

    private void End(string? error, JsonElement answer)
    {
        if (error is not null)
        {
            Stream.Fail(error);
        }
        else
        {
            Stream.Complete(KeptStream.Serialize(answer));
        }
    }

    /// <summary>Stops reading (which stops the flow upstream too) and asks TROM.AI to abort it.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _reading.Dispose();
        }

        base.Dispose(disposing);
    }

    protected override void OnCancelled()
    {
        try
        {
            _reading.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        _ = AbortUpstreamAsync();
    }

    private Task AbortUpstreamAsync() =>
        Volatile.Read(ref _replica) is { } replica ? _calls.AbortAsync(_caller, replica, _chatflowId, _chatId) : Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(3021, LogLevel.Warning, "Skipped an unreadable SSE block from TROM.AI: {Reason}", EventName = "PredictSkippedSseBlock")]
        public static partial void SkippedBlock(ILogger logger, string reason);

        [LoggerMessage(5010, LogLevel.Error, "Prediction {ChatId} of chatflow {ChatflowId} over SSE failed in the gateway.", EventName = "SsePredictFailed")]
        public static partial void Failed(ILogger logger, string chatflowId, string chatId, Exception exception);
    }
}
