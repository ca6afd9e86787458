using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.SignalR;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The one queue an upstream event crosses: the Socket.IO receive loop writes, a single consumer
/// sends to the SignalR connection, so order is the wire order and a slow client never stalls the
/// socket. The queue is bounded: a client that stops reading is cut off instead of growing memory.
/// </summary>
internal sealed partial class ConnectionRelay : IUpstreamListener
{
    private static readonly TimeSpan CloseLinger = TimeSpan.FromSeconds(1);
    private readonly ConnectionContext _connection;
    private readonly GatewayMetrics _metrics;
    private readonly HubLifetimeManager<PredictionHub> _clients;
    private readonly ILogger _logger;
    private readonly int _maxBacklog;
    private readonly Channel<RelayedEvent> _queue;
    private volatile ChannelWriter<PredictionEvent>? _capture;
    private Task _pump = Task.CompletedTask;

    public ConnectionRelay(ConnectionContext connection, HubLifetimeManager<PredictionHub> clients, int maxBacklog, GatewayMetrics metrics, ILogger logger)
    {
        _connection = connection;
        _metrics = metrics;
        _clients = clients;
        _maxBacklog = maxBacklog;
        _logger = logger;
        _queue = Channel.CreateBounded<RelayedEvent>(new BoundedChannelOptions(maxBacklog)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of dropping silently
        });
    }

    public void OnEvent(string name, object?[] args) => Enqueue(new RelayedEvent(name, args));

    public void OnLost(string reason) =>
        Enqueue(new RelayedEvent(GatewayEvents.UpstreamLost, [new GatewayEvents.UpstreamLostNotice(reason)]));

    public void OnRestored(int attempts, TimeSpan downtime) =>
        Enqueue(new RelayedEvent(GatewayEvents.UpstreamRestored, [new GatewayEvents.UpstreamRestoredNotice(attempts, (long)downtime.TotalMilliseconds)]));

    /// <summary>
    /// Sends upstream events to <paramref name="capture"/> (a hub <c>Predict</c> stream) instead of
    /// to the client's handlers, until <see cref="EndCapture"/>. The gateway's own notifications
    /// still go to the client.
    /// </summary>
    public void BeginCapture(ChannelWriter<PredictionEvent> capture) => _capture = capture;

    public void EndCapture() => _capture = null;

    /// <summary>Completes when every event queued before this call has been sent or captured.</summary>
    public Task DrainAsync()
    {
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(new RelayedEvent(null!, [], drained));
        return drained.Task;
    }

    /// <summary>
    /// Sends <paramref name="name"/> after everything already queued, then closes the connection the
    /// way a server shutdown does: the client is told it may reconnect (JS <c>withAutomaticReconnect</c> does).
    /// </summary>
    public async Task CloseAsync(string name, object notice, TimeSpan timeout)
    {
        Enqueue(new RelayedEvent(name, [notice]));
        try
        {
            await DrainAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            // The client does not read; it gets the close without the notice.
        }

        // The notice is in the connection's pipe, not yet on the wire, and the close aborts whatever
        // the transport has not sent: let it go out first.
        await Task.Delay(CloseLinger);
        _connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
    }

    /// <summary>Starts sending. Called once SignalR knows the connection; until then events wait in the queue.</summary>
    public void Start() => _pump = PumpAsync();

    /// <summary>Stops sending once the connection has ended; whatever is still queued has nowhere to go.</summary>
    public async Task StopAsync()
    {
        _queue.Writer.TryComplete();
        await _pump;
        var left = 0;
        while (_queue.Reader.TryRead(out _))
        {
            left++;
        }

        if (left > 0)
        {
            _metrics.Dequeued(left); // they leave the queue unsent: the depth must not keep them
        }
    }

    private void Enqueue(RelayedEvent item)
    {
        if (_queue.Writer.TryWrite(item with { EnqueuedAt = Stopwatch.GetTimestamp() }))
        {
            _metrics.Enqueued();
            return;
        }

        if (_queue.Writer.TryComplete())
        {
            _metrics.Rejected(GatewayMetrics.RejectReason.Backlog);
            Log.BacklogExceeded(_logger, _connection.ConnectionId, _maxBacklog);
            _connection.Abort(new ConnectionAbortedException(
                $"The client did not read its events: more than {_maxBacklog} were waiting (Gateway:Relay:MaxBacklog)."));
        }
    }

    private async Task PumpAsync()
    {
        var reader = _queue.Reader;
        var closed = _connection.ConnectionClosed;
        try
        {
            while (await reader.WaitToReadAsync(closed))
            {
                while (reader.TryRead(out var item))
                {
                    _metrics.Dequeued();
                    if (item.Drained is not null)
                    {
                        item.Drained.TrySetResult();
                    }
                    else if (_capture is { } capture && !item.Name.StartsWith(GatewayEvents.Prefix, StringComparison.Ordinal))
                    {
                        // Waits when the stream's reader lags: the backlog then builds up in this queue, bounded as always.
                        await capture.WriteAsync(PredictionEvent.From(item.Name, item.Args), closed);
                        _metrics.EventRelayed(item.Name, Stopwatch.GetElapsedTime(item.EnqueuedAt).TotalMilliseconds);
                    }
                    else
                    {
                        await _clients.SendConnectionAsync(_connection.ConnectionId, item.Name, item.Args, closed);
                        _metrics.EventRelayed(item.Name, Stopwatch.GetElapsedTime(item.EnqueuedAt).TotalMilliseconds);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (closed.IsCancellationRequested)
        {
            // The connection ended while a send waited for the client.
        }
        catch (Exception e)
        {
            Log.SendFailed(_logger, _connection.ConnectionId, e);
            _connection.Abort(new ConnectionAbortedException("The gateway could not relay an event.", e));
        }
    }

    /// <param name="Drained">Set on the marker that <see cref="DrainAsync"/> queues instead of an event.</param>
    private readonly record struct RelayedEvent(string Name, object?[] Args, TaskCompletionSource? Drained = null)
    {
        public long EnqueuedAt { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Closing connection {ConnectionId}: more than {MaxBacklog} events waited for it to read.")]
        public static partial void BacklogExceeded(ILogger logger, string connectionId, int maxBacklog);

        [LoggerMessage(2, LogLevel.Error, "Relaying to connection {ConnectionId} failed; closing it.")]
        public static partial void SendFailed(ILogger logger, string connectionId, Exception exception);
    }
}
