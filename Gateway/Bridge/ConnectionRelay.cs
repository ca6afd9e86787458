using System.Diagnostics;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The one queue an upstream event crosses: the Socket.IO receive loop writes, a single consumer
/// (the pump) sends to the SignalR connection or into the running <c>Predict</c>'s capture, so order
/// is the wire order. Markers travel through the same queue (a capture's start and end, "everything
/// before me was sent"), so whatever waits for one keeps reading meanwhile.
/// <para>
/// Memory is bounded by <c>Relay:MaxBacklog</c> through backpressure, not by cutting clients: while
/// that many events wait, the upstream receive loop stops reading (<see cref="WaitForRoomAsync"/>)
/// and TCP slows TROM.AI down, so a burst after a stall is absorbed by a client that reads. Only a
/// client that takes nothing for <c>Relay:SlowClientTimeout</c> is cut off.
/// </para>
/// <para>
/// The relay outlives its client's connection while a prediction of it still runs for its stream
/// (<see cref="BridgedConnection.TryHold"/>): it goes on reading the upstream session into the
/// prediction's capture or recording, and drops what was for the client.
/// </para>
/// </summary>
internal sealed partial class ConnectionRelay : IUpstreamListener, IDisposable
{
    // Notices and markers enter without waiting for room; this much above MaxBacklog is theirs before
    // an event from a producer that cannot wait (the polling transport) counts as an overflow.
    private const int MarkerAllowance = 64;

    // A queue that grew past this in a burst is given back once it has drained.
    private const int ShrinkAbove = 64;

    private readonly ConnectionContext _connection;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly int _maxBacklog;
    private readonly TimeSpan _slowClientTimeout;
    // The items waiting for the pump, in order, and the pump's state; all under lock (_items). Not a
    // Channel: the pump runs only while something waits, on the thread that queued the first of it (the
    // upstream receive loop, for an event: no thread-pool hop), so an idle connection holds neither a
    // parked reader nor a queue segment. A Channel's first 32-slot segment, its reader and the parked
    // pump were 2.2 KB of an idle session's 31 KB in a heap dump of 2,000 (Gateway.Bench/RESULTS.md).
    // Nothing queues under a lock, so the pump's first send, which usually completes at once, does not
    // run under someone else's.
    private readonly Queue<RelayItem> _items = new();
    private bool _started;
    private bool _pumping;
    private bool _stopped;
    private TaskCompletionSource? _pumpEnded;
    private readonly CancellationToken _closed;
    private readonly CancellationTokenSource _stopping = new();
    private int _depth;
    private TaskCompletionSource? _room;
    private int _closing;

    // The pump's alone: where upstream events go while a Predict runs.
    private PredictionCapture? _capture;

    // The pump's alone: the streams of REST predictions that keep the events sent to the client (usually none or one).
    private readonly List<RestRecording> _recordings = [];

    // SignalR's side of the connection, given with Start: the pump writes to it directly, as the lifetime
    // manager would for a connection of this instance, minus a lookup by id.
    private HubConnectionContext? _hub;

    // The pump's alone: an event with one JSON argument goes out in this message, whose one argument is
    // this RawJson pointed at the event's bytes for the send and cleared after it. A token then costs
    // SignalR no InvocationMessage, arguments array or RawJson of its own; the message is made again
    // only when the event's name changes. Safe to reuse because the pump awaits each send: SignalR has
    // serialized the message by then (a stateful-reconnect buffer keeps the serialized bytes, not these).
    // Per connection, never shared: a mistake here could only repeat a client's own event, never show another's.
    private RawJson? _lent;
    private InvocationMessage? _lentMessage;

    public ConnectionRelay(ConnectionContext connection, RelayOptions options, TimeProvider time, GatewayMetrics metrics, ILogger logger)
    {
        _connection = connection;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _maxBacklog = options.MaxBacklog;
        _slowClientTimeout = options.SlowClientTimeout;
        _closed = connection.ConnectionClosed; // read once: the connection's own token source goes away with it
    }

    private bool Closing => Volatile.Read(ref _closing) != 0;

    public void OnEvent(string name, object?[] args) => OnEvent(name, EventArguments.Of(args));

    public void OnEvent(string name, EventArguments args)
    {
        // The upstream receive loop waits for room before each frame and never gets here over the
        // limit; a producer that cannot wait (the polling transport) is cut off like a client that does not read.
        if (Volatile.Read(ref _depth) >= _maxBacklog + MarkerAllowance)
        {
            Close(GatewayMetrics.RejectReason.Backlog, $"The client did not read its events: more than {_maxBacklog} were waiting (Gateway:Relay:MaxBacklog).");
            return;
        }

        Enqueue(RelayItem.Event(name, args));
    }

    /// <summary>Queues an event once there is room (see <see cref="WaitForRoomAsync"/>): for producers that can wait, such as an SSE answer being relayed.</summary>
    public async ValueTask WriteAsync(string name, object?[] args, CancellationToken cancellationToken)
    {
        await WaitForRoomAsync(cancellationToken);
        Enqueue(RelayItem.Event(name, EventArguments.Of(args)));
    }

    public void OnLost(string reason) =>
        Enqueue(RelayItem.Notice(GatewayEvents.UpstreamLost, [new GatewayEvents.UpstreamLostNotice(reason)]));

    public void OnRestored(int attempts, TimeSpan downtime) =>
        Enqueue(RelayItem.Notice(GatewayEvents.UpstreamRestored, [new GatewayEvents.UpstreamRestoredNotice(attempts, (long)downtime.TotalMilliseconds)]));

    /// <summary>
    /// Completes when fewer than <c>MaxBacklog</c> items wait. Called by the upstream receive loop
    /// after each frame, which reads nothing meanwhile, Engine.IO's pings included: TROM.AI drops a
    /// socket that has not answered its ping within its ping timeout (Socket.IO's default: 20 s after
    /// the ping, which comes every 25 s). So the wait is bounded: a client that takes nothing for
    /// <c>SlowClientTimeout</c> (10 s by default) is cut off, and its session with it, before TROM.AI
    /// would drop the socket. A client that reads, however slowly, sets the pace instead; if it is so
    /// slow that a ping waits behind its backlog past TROM.AI's timeout, the session drops and comes back
    /// (gateway:upstream-lost, then -restored), as after any network blip.
    /// </summary>
    public ValueTask WaitForRoomAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _depth) < _maxBacklog || Closing ? ValueTask.CompletedTask : new(WaitForRoomSlowAsync(cancellationToken));

    private async Task WaitForRoomSlowAsync(CancellationToken cancellationToken)
    {
        while (!Closing)
        {
            var room = Volatile.Read(ref _room);
            if (room is null)
            {
                var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = Interlocked.CompareExchange(ref _room, mine, null) ?? mine;
            }

            // Checked after publishing the waiter: the pump decrements first and looks for a waiter
            // second, so one of the two sees the other.
            if (Volatile.Read(ref _depth) < _maxBacklog)
            {
                return;
            }

            try
            {
                await room.Task.WaitAsync(_slowClientTimeout, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                Close(GatewayMetrics.RejectReason.Backlog,
                    $"The client read nothing for {_slowClientTimeout} while {_maxBacklog} events were waiting (Gateway:Relay:SlowClientTimeout).");
                return;
            }
        }
    }

    /// <summary>
    /// From here on, upstream events go to <paramref name="capture"/> (a hub <c>Predict</c>) instead
    /// of to the client's handlers, until <see cref="EndCapture"/>: the switch is a marker in the
    /// queue, so events queued before it still reach the handlers. The gateway's own notifications
    /// always go to the client.
    /// </summary>
    public void BeginCapture(PredictionCapture capture)
    {
        if (!Enqueue(new RelayItem(RelayItemKind.BeginCapture, null, default, capture)))
        {
            capture.Abandon();
        }
    }

    /// <summary>Ends the capture behind everything queued before this call; its reader then sees the end marker.</summary>
    public void EndCapture(PredictionCapture capture)
    {
        if (!Enqueue(new RelayItem(RelayItemKind.EndCapture, null, default, capture)))
        {
            capture.Abandon();
        }
    }

    /// <summary>
    /// From here on, the events sent to the client are kept in <paramref name="recording"/>'s stream too,
    /// behind a <c>gateway:stream</c> notice that tells the client the stream's id, until
    /// <see cref="EndRecording"/>. A marker in the queue: events queued before it are not the prediction's.
    /// </summary>
    public void BeginRecording(RestRecording recording)
    {
        if (!Enqueue(new RelayItem(RelayItemKind.BeginRecording, null, default, recording)))
        {
            recording.Abandon();
        }
    }

    /// <summary>Ends the recording behind everything queued before this call, with a <c>gateway:stream-end</c> notice.</summary>
    public void EndRecording(RestRecording recording)
    {
        if (!Enqueue(new RelayItem(RelayItemKind.EndRecording, null, default, recording)))
        {
            recording.Abandon();
        }
    }

    /// <summary>Completes when everything queued before this call has been sent to the connection (or captured), or the relay stopped.</summary>
    public Task SentAsync()
    {
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!Enqueue(new RelayItem(RelayItemKind.Sent, null, default, sent)))
        {
            sent.TrySetResult();
        }

        return sent.Task;
    }

    /// <summary>
    /// Sends <paramref name="name"/> after everything already queued, then closes the connection the
    /// way a server shutdown does: SignalR's close message tells the client it may reconnect (JS
    /// <c>withAutomaticReconnect</c> does), then the WebSocket closes normally. Completes when the
    /// connection has closed, so a host that stops next does not cut it mid-close.
    /// </summary>
    public async Task CloseAsync(string name, object notice, TimeSpan timeout)
    {
        if (_closed.IsCancellationRequested)
        {
            return; // ended on its own meanwhile
        }

        Enqueue(RelayItem.Notice(name, [notice]));
        try
        {
            // Sent means written to the connection's transport, ahead of the close message that
            // RequestClose makes SignalR write: the transport sends both in order before closing.
            await SentAsync().WaitAsync(timeout, _time);
        }
        catch (TimeoutException)
        {
            // The client does not read; it gets the close without the notice.
        }

        // Watched only here, while draining: a completion held for every connection's life costs each one.
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            using var watching = _closed.Register(static state => ((TaskCompletionSource)state!).TrySetResult(), closed);
            _connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
            await closed.Task.WaitAsync(timeout, _time);
        }
        catch (ObjectDisposedException)
        {
            // It ended between the check above and here.
        }
        catch (TimeoutException)
        {
            Log.CloseTimedOut(_logger, _connection.ConnectionId, timeout);
        }
    }

    /// <summary>
    /// Starts sending to <paramref name="hub"/>. Called by the hub's lifetime manager as SignalR takes the
    /// connection (<see cref="BridgedConnection.OnHubConnected"/>); until then events wait in the queue.
    /// </summary>
    public void Start(HubConnectionContext hub)
    {
        lock (_items)
        {
            _hub = hub; // published by the lock to the pump, which starts under it
            _started = true;
            if (!TakePump())
            {
                return;
            }
        }

        _ = PumpAsync();
    }

    /// <summary>Stops sending once the connection has ended; whatever is still queued has nowhere to go.</summary>
    public async Task StopAsync()
    {
        Task? pump = null;
        lock (_items)
        {
            _stopped = true;
            if (_pumping)
            {
                _pumpEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                pump = _pumpEnded.Task;
            }
        }

        Interlocked.Exchange(ref _closing, 1);
        Interlocked.Exchange(ref _room, null)?.TrySetResult(); // a waiting receive loop goes on, to be closed with its session
        await _stopping.CancelAsync(); // a capture nobody reads any more must not hold the pump
        if (pump is not null)
        {
            await pump;
        }

        // No pump runs any more, nor will one start: what it held and what is still queued is ours now.
        AbandonHeld();
        RelayItem[] left;
        lock (_items)
        {
            left = _items.ToArray();
            _items.Clear();
        }

        foreach (var item in left)
        {
            Discard(item);
        }

        if (left.Length > 0)
        {
            _metrics.Dequeued(left.Length); // they leave the queue unsent: the depth must not keep them
        }
    }

    /// <summary>Once stopped.</summary>
    public void Dispose() => _stopping.Dispose();

    /// <summary>False when the relay no longer takes anything (the connection is closing).</summary>
    private bool Enqueue(RelayItem item)
    {
        lock (_items)
        {
            if (_stopped)
            {
                return false;
            }

            _items.Enqueue(item with { EnqueuedAt = Stopwatch.GetTimestamp() });
            Interlocked.Increment(ref _depth);
            _metrics.Enqueued();
            if (!TakePump())
            {
                return true;
            }
        }

        // This thread becomes the pump until the queue is empty (or a send has to wait).
        _ = PumpAsync();
        return true;
    }

    /// <summary>Under the lock: true when the caller is to start the pump, which then sends everything queued.</summary>
    private bool TakePump()
    {
        if (_pumping || !_started || _stopped || _items.Count == 0)
        {
            return false;
        }

        _pumping = true;
        return true;
    }

    /// <summary>
    /// Cuts the connection off: the client cannot keep up, and the queue must not grow. What was for the
    /// client is dropped from now on, so the queue empties at once; a prediction still running for its
    /// stream goes on being recorded.
    /// </summary>
    private void Close(string reason, string message)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
        {
            return;
        }

        Interlocked.Exchange(ref _room, null)?.TrySetResult();
        _metrics.Rejected(reason);
        Log.ClientTooSlow(_logger, _connection.ConnectionId, message);
        _connection.Abort(new ConnectionAbortedException(message));
    }

    /// <summary>
    /// Sends what is queued, in order, until nothing is left; started by whoever queued into an empty
    /// queue (<see cref="TakePump"/>), so exactly one runs at a time. A send that fails ends the relay:
    /// it takes nothing more, and what it held is abandoned.
    /// </summary>
    private async Task PumpAsync()
    {
        var stopping = _stopping.Token;
        try
        {
            while (TryTakeNext(out var item))
            {
                Dequeued();
                await HandleAsync(item, stopping);
            }

            return;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopped while a capture waited for its reader.
        }
        catch (Exception e)
        {
            Log.SendFailed(_logger, _connection.ConnectionId, e);
            _connection.Abort(new ConnectionAbortedException("The gateway could not relay an event.", e));
        }

        AbandonHeld();
        TaskCompletionSource? waiting;
        lock (_items)
        {
            _stopped = true;
            _pumping = false;
            waiting = _pumpEnded;
        }

        waiting?.TrySetResult();
    }

    /// <summary>The next item for the pump; false, with the pump given up, when the queue is empty.</summary>
    private bool TryTakeNext(out RelayItem item)
    {
        TaskCompletionSource? waiting;
        lock (_items)
        {
            if (_items.TryDequeue(out item))
            {
                return true;
            }

            _pumping = false;
            if (_items.Capacity > ShrinkAbove)
            {
                _items.TrimExcess(); // a burst's backlog is not kept for the connection's life
            }

            waiting = _pumpEnded;
        }

        waiting?.TrySetResult();
        return false;
    }

    /// <summary>By the pump as it ends for good, or once it has: a capture's reader and a recording must not wait for a marker that will not come.</summary>
    private void AbandonHeld()
    {
        _capture?.Abandon();
        _capture = null;
        foreach (var recording in _recordings)
        {
            recording.Abandon();
        }

        _recordings.Clear();
    }

    private async ValueTask HandleAsync(RelayItem item, CancellationToken stopping)
    {
        switch (item.Kind)
        {
            case RelayItemKind.Event when _capture is { } capture:
                // False when the capture was abandoned: its events go nowhere until its end marker.
                if (await capture.WriteAsync(new CapturedEvent(item.Name!, item.Args.ToArray()), stopping))
                {
                    _metrics.EventRelayed(item.Name!, Stopwatch.GetElapsedTime(item.EnqueuedAt).TotalMilliseconds);
                }

                break;
            case RelayItemKind.Event:
                foreach (var recording in _recordings)
                {
                    recording.Stream.Append(item.Name!, item.Args);
                }

                await SendAsync(item.Name!, item.Args, item.EnqueuedAt);
                break;
            case RelayItemKind.Notice:
                await SendAsync(item.Name!, item.Args, item.EnqueuedAt);
                break;
            case RelayItemKind.BeginCapture:
                _capture = (PredictionCapture)item.State!;
                break;
            case RelayItemKind.EndCapture:
                var ending = (PredictionCapture)item.State!;
                if (ReferenceEquals(_capture, ending))
                {
                    _capture = null;
                }

                await ending.EndAsync(stopping);
                break;
            case RelayItemKind.BeginRecording:
                var begun = (RestRecording)item.State!;
                _recordings.Add(begun);
                var start = begun.Stream.Start;
                await SendAsync(GatewayEvents.Stream, EventArguments.Of([new GatewayEvents.StreamNotice(start.StreamId, start.ChatflowId, start.ChatId)]), item.EnqueuedAt);
                break;
            case RelayItemKind.EndRecording:
                var ended = (RestRecording)item.State!;
                if (_recordings.Remove(ended))
                {
                    await SendAsync(GatewayEvents.StreamEnd, EventArguments.Of([new GatewayEvents.StreamEndNotice(ended.Stream.Start.StreamId, ended.Stream.LastSeq)]), item.EnqueuedAt);
                }

                ended.OnEndMarker();
                break;
            case RelayItemKind.Sent:
                ((TaskCompletionSource)item.State!).TrySetResult();
                break;
        }
    }

    /// <summary>Sends to the client, unless its connection has ended: then only kept streams take what comes.</summary>
    private async ValueTask SendAsync(string name, EventArguments args, long enqueuedAt)
    {
        if (_closed.IsCancellationRequested)
        {
            return;
        }

        try
        {
            if (args.TryGetJson(out var utf8))
            {
                var message = Lend(name, utf8);
                try
                {
                    await _hub!.WriteAsync(message, _closed);
                }
                finally
                {
                    _lent!.Reuse(default); // the event's bytes are not held past its send
                }
            }
            else
            {
                await _hub!.WriteAsync(new InvocationMessage(name, args.ToArray()), _closed);
            }

            _metrics.EventRelayed(name, Stopwatch.GetElapsedTime(enqueuedAt).TotalMilliseconds);
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
            // The connection ended while the send waited for the client.
        }
    }

    /// <summary>The pump's reused message for <paramref name="name"/>, its one argument pointed at <paramref name="utf8"/>.</summary>
    private InvocationMessage Lend(string name, byte[] utf8)
    {
        _lent ??= new RawJson(default);
        _lent.Reuse(utf8);
        if (_lentMessage is null || !string.Equals(_lentMessage.Target, name, StringComparison.Ordinal))
        {
            _lentMessage = new InvocationMessage(name, _lentMessage?.Arguments ?? [_lent]);
        }

        return _lentMessage;
    }

    private void Dequeued()
    {
        var depth = Interlocked.Decrement(ref _depth);
        _metrics.Dequeued();
        if (depth < _maxBacklog && Volatile.Read(ref _room) is not null)
        {
            Interlocked.Exchange(ref _room, null)?.TrySetResult();
        }
    }

    private static void Discard(RelayItem item)
    {
        switch (item.State)
        {
            case PredictionCapture capture:
                capture.Abandon();
                break;
            case RestRecording recording when item.Kind == RelayItemKind.EndRecording:
                recording.OnEndMarker();
                break;
            case RestRecording recording:
                recording.Abandon();
                break;
            case TaskCompletionSource sent:
                sent.TrySetResult();
                break;
        }
    }

    private enum RelayItemKind
    {
        /// <summary>An upstream event: to the running capture, else to the client.</summary>
        Event,

        /// <summary>The gateway's own notification: always to the client.</summary>
        Notice,

        BeginCapture,
        EndCapture,
        BeginRecording,
        EndRecording,

        /// <summary>Completes its <see cref="TaskCompletionSource"/> when reached.</summary>
        Sent,
    }

    /// <param name="State">The capture of a capture marker, the completion of a <see cref="RelayItemKind.Sent"/> marker.</param>
    private readonly record struct RelayItem(RelayItemKind Kind, string? Name, EventArguments Args, object? State)
    {
        public long EnqueuedAt { get; init; }

        public static RelayItem Event(string name, EventArguments args) => new(RelayItemKind.Event, name, args, null);

        public static RelayItem Notice(string name, object?[] args) => new(RelayItemKind.Notice, name, EventArguments.Of(args), null);
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Warning, "Closing connection {ConnectionId}: {Reason}", EventName = "RelayClientTooSlow")]
        public static partial void ClientTooSlow(ILogger logger, string connectionId, string reason);

        [LoggerMessage(3002, LogLevel.Error, "Relaying to connection {ConnectionId} failed; closing it.", EventName = "RelaySendFailed")]
        public static partial void SendFailed(ILogger logger, string connectionId, Exception exception);

        [LoggerMessage(3003, LogLevel.Warning, "Connection {ConnectionId} did not close within {Timeout} of being asked to.", EventName = "RelayCloseTimedOut")]
        public static partial void CloseTimedOut(ILogger logger, string connectionId, TimeSpan timeout);
    }
}
