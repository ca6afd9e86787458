using System.Net.WebSockets;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The stream of a prediction asked over REST for a hub connection of this instance, while TROM.AI
/// streams over Socket.IO: its events arrive on the connection's upstream session, here, whichever
/// instance forwarded the POST. The relay keeps every event it sends to the client between a
/// <c>gateway:stream</c> notice and a <c>gateway:stream-end</c> notice; the instance that forwarded
/// the POST reports TROM.AI's answer (<see cref="EndAsync"/>), which ends the stream after a barrier
/// on the socket (the answer can overtake the last events). The session stays open until then, after
/// the client's connection has gone too.
/// </summary>
internal sealed partial class RestRecording : KeptPrediction
{
    // As SocketIOPrediction's: without a barrier (long-polling, a socket that just dropped) the last events get this long.
    private static readonly TimeSpan PollingSettleTime = TimeSpan.FromMilliseconds(200);

    private readonly BridgedConnection _connection;
    private readonly IDisposable _hold;
    private readonly RestStreams _owner;
    private readonly PredictionStreams _calls;
    private readonly Uri? _destination;
    private readonly TimeSpan _activityTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ITimer _watchdog;
    private RestAnswer? _answer;
    private int _ending;
    private int _closed;
    private long _seenSeq = -1;

    public RestRecording(
        BridgedConnection connection, IDisposable hold, IStreamWriter stream, RestStreams owner, PredictionStreams calls,
        PredictionRuns runs, GatewayOptions options, TimeProvider time, ILogger logger)
        : base(stream, runs, options.Streams.DetachedTimeout, time)
    {
        _connection = connection;
        _hold = hold;
        _owner = owner;
        _calls = calls;
        _destination = connection.Session?.Destination;
        _activityTimeout = options.Proxy.ActivityTimeout;
        _time = time;
        _logger = logger;

        // The instance that forwarded the POST reports its end; should it die first, nothing would.
        // Its own ActivityTimeout ends a silent POST, so silence longer than that means it is gone.
        _watchdog = time.CreateTimer(static state => ((RestRecording)state!).Watch(), this, _activityTimeout, _activityTimeout);
    }

    /// <summary>Starts recording behind everything the relay holds already.</summary>
    public void Begin()
    {
        _connection.Relay.BeginRecording(this);
        _connection.Closed.Register(static state => ((RestRecording)state!).Detach(), this);
    }

    /// <summary>TROM.AI has answered the POST: the stream ends with <paramref name="answer"/> once every event emitted before it has arrived.</summary>
    public async Task EndAsync(RestAnswer answer)
    {
        if (Interlocked.Exchange(ref _ending, 1) != 0)
        {
            return;
        }

        _answer = answer;
        await BarrierAsync();
        _connection.Relay.EndRecording(this);
    }

    /// <summary>The relay reached the end marker: every event of the prediction went into the stream before it.</summary>
    internal void OnEndMarker()
    {
        if (_answer is { Error: { } error })
        {
            Stream.Fail(error);
        }
        else if (_answer is { } answer)
        {
            Stream.Complete(answer.Answer);
        }
        else
        {
            Stream.Fail("The prediction ended without an answer.");
        }

        Close();
    }

    /// <summary>The relay stopped before the end marker: the events that would have followed cannot arrive.</summary>
    internal void Abandon()
    {
        Stream.Fail("The connection's upstream session closed before the prediction ended.");
        Close();
    }

    protected override void OnCancelled()
    {
        if (Stream.Start.ChatId is { } chatId && _destination is { } destination)
        {
            _ = _calls.AbortAsync(_connection.Caller, destination, Stream.Start.ChatflowId, chatId);
        }

        // The stream has its end already; stop recording into it, which lets the session go.
        if (Interlocked.Exchange(ref _ending, 1) == 0)
        {
            _connection.Relay.EndRecording(this);
        }
    }

    private void Watch()
    {
        var seen = Stream.LastSeq;
        if (Interlocked.Exchange(ref _seenSeq, seen) == seen && Volatile.Read(ref _ending) == 0)
        {
            Cancel($"The gateway instance that forwarded the prediction did not report its end, and no event came, within {_activityTimeout} (Gateway:Proxy:ActivityTimeout).");
        }
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _watchdog.Dispose();
        _owner.Remove(this);
        _hold.Dispose();
        Finish();
    }

    private async Task BarrierAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(_activityTimeout, _time);
            if (_connection.Session is { } session && await session.FlushAsync(timeout.Token))
            {
                return;
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            Log.BarrierFailed(_logger, Stream.Start.StreamId, e.Message);
        }

        await Task.Delay(PollingSettleTime, _time);
    }

    private static partial class Log
    {
        [LoggerMessage(5020, LogLevel.Debug, "No barrier before the end of REST stream {StreamId} ({Reason}); waiting a moment for its last events instead.", EventName = "RestStreamBarrierFailed")]
        public static partial void BarrierFailed(ILogger logger, string streamId, string reason);
    }
}
