using System.Net;
using SocketIOClient.Transport;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// One SignalR connection's Socket.IO session with TROM.AI. It owns the reconnect policy (exponential
/// backoff with jitter, another replica first): after an upstream restart every gateway session must
/// not knock at once. Each attempt opens a fresh connection, so no state of a dead socket leaks into
/// the next one.
/// </summary>
internal sealed partial class UpstreamSession : IAsyncDisposable
{
    private readonly UpstreamOptions _options;
    private readonly UpstreamDestinations _destinations;
    private readonly IUpstreamListener _listener;
    private readonly WarmUpstreamSockets? _warm;
    private readonly GatewayMetrics _metrics;
    private UpstreamState? _state;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _disposed = new();
    private readonly Lock _gate = new();
    private IUpstreamConnection? _connection;
    private Uri? _destination;
    private Task _reconnecting = Task.CompletedTask;

    public UpstreamSession(UpstreamOptions options, UpstreamDestinations destinations, IUpstreamListener listener, TimeProvider time, GatewayMetrics metrics, ILogger logger, WarmUpstreamSockets? warm = null)
    {
        _warm = warm;
        _metrics = metrics;
        _options = options;
        _destinations = destinations;
        _listener = listener;
        _time = time;
        _logger = logger;
    }

    /// <summary>The upstream's id for this session's socket, or null while it is reconnecting. Never shown to clients.</summary>
    public string? SocketId
    {
        get
        {
            lock (_gate)
            {
                return _connection?.SocketId;
            }
        }
    }

    /// <summary>The replica this session's socket lives on (or last lived on, while reconnecting).</summary>
    public Uri? Destination
    {
        get
        {
            lock (_gate)
            {
                return _destination;
            }
        }
    }

    /// <summary>
    /// Completes once every event the upstream emitted to this session before the call has reached
    /// the listener. False when the transport cannot tell (long-polling) or the session is reconnecting.
    /// </summary>
    /// <exception cref="System.Net.WebSockets.WebSocketException">The socket closed before the barrier came back.</exception>
    public Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        IUpstreamConnection? connection;
        lock (_gate)
        {
            connection = _connection;
        }

        return connection?.FlushAsync(cancellationToken) ?? Task.FromResult(false);
    }

    /// <summary>Raised when the session's socket goes away or comes back: its <see cref="SocketId"/> changed.</summary>
    public event Action<UpstreamSession>? SocketChanged;

    /// <summary>
    /// Opens the session: on a warm socket when <paramref name="warm"/> allows and one is ready, otherwise on the
    /// least loaded replica, trying each replica once; completes when one has accepted the socket.
    /// </summary>
    /// <param name="warm">Whether a socket opened ahead may serve: only once TROM.AI is known to speak Socket.IO.</param>
    /// <exception cref="UpstreamUnavailableException">No replica accepted it within the configured time.</exception>
    public async Task ConnectAsync(bool warm, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            MoveTo(UpstreamState.Connecting);
        }

        if (warm && await TryAdoptWarmAsync())
        {
            return;
        }

        Uri? failed = null;
        for (var attempt = 1; ; attempt++)
        {
            var destination = _destinations.Acquire(avoid: failed);
            try
            {
                var connection = await OpenAsync(destination, cancellationToken);
                if (Adopt(connection, destination))
                {
                    CloseIfEnded(connection);
                    return;
                }

                await connection.DisposeAsync();
                throw new ObjectDisposedException(nameof(UpstreamSession)); // the catch below releases the destination
            }
            catch (UpstreamUnavailableException) when (attempt < _destinations.Replicas.Count)
            {
                _destinations.Release(destination);
                failed = destination;
            }
            catch
            {
                _destinations.Release(destination);
                lock (_gate)
                {
                    MoveTo(null);
                }

                throw;
            }
        }
    }

    /// <summary>Takes a warm socket, if one is ready and still open; one that closed meanwhile is let go, and the caller opens a fresh one.</summary>
    private async Task<bool> TryAdoptWarmAsync()
    {
        if (_warm?.TryTake() is not { } socket)
        {
            return false;
        }

        socket.Connection.Attach(_listener, OnClosed);
        if (socket.Connection.ClosedReason is null && Adopt(socket.Connection, socket.Destination))
        {
            CloseIfEnded(socket.Connection);
            return true;
        }

        _destinations.Release(socket.Destination);
        await socket.Connection.DisposeAsync();
        return false;
    }

    private async Task<IUpstreamConnection> OpenAsync(Uri destination, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            return _options.Transport == TransportProtocol.Polling
                ? await PollingUpstreamConnection.ConnectAsync(destination, _listener, OnClosed, _options.ConnectTimeout, timeout.Token)
                : await WebSocketUpstreamConnection.ConnectAsync(destination, _listener, OnClosed, timeout.Token);
        }
        catch (Exception e)
        {
            if (_disposed.IsCancellationRequested || cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The upstream session was closed while connecting.", e);
            }

            // The client sees why, never where: the address stays in the log.
            Log.ConnectFailed(_logger, destination, e.Message);
            throw new UpstreamUnavailableException(WhyNotOpened(e), e);
        }
    }

    /// <summary>For the client (no address): what the upstream did instead, and what to change when the setting is the cause.</summary>
    private string WhyNotOpened(Exception e) => e switch
    {
        SocketIOClosedException { UpgradeStatus: { } status } when StreamingModeMismatch.MeansNoSocketIO(status) => StreamingModeMismatch.NoSocketIO(status),
        OperationCanceledException => $"TROM.AI did not open a Socket.IO session: no answer within {_options.ConnectTimeout.TotalSeconds:0.###} s.",
        SocketIOClosedException { UpgradeStatus: HttpStatusCode.BadRequest } =>
            "TROM.AI did not open a Socket.IO session: it answered HTTP 400 to the WebSocket upgrade, as Socket.IO does when the upgrade "
            + "did not reach it (a proxy in between that passes no WebSocket; Gateway:Upstream:Transport=Polling works through one).",
        SocketIOClosedException { UpgradeStatus: { } status } => $"TROM.AI did not open a Socket.IO session: it answered HTTP {(int)status} to the WebSocket upgrade.",
        _ => "TROM.AI did not open a Socket.IO session: it is unreachable.",
    };

    /// <summary>Makes <paramref name="connection"/> the session's socket; false when the session was disposed meanwhile.</summary>
    private bool Adopt(IUpstreamConnection connection, Uri destination)
    {
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return false;
            }

            _connection = connection;
            _destination = destination;
            MoveTo(UpstreamState.Connected);
            return true;
        }
    }

    /// <summary>A socket that ended between its connect and its adoption reported it before it was ours to watch.</summary>
    private void CloseIfEnded(IUpstreamConnection connection)
    {
        if (connection.ClosedReason is { } reason)
        {
            OnClosed(connection, reason);
        }
    }

    private void OnClosed(IUpstreamConnection connection, string reason)
    {
        lock (_gate)
        {
            // A socket we replaced or closed ourselves says goodbye too; only the live one counts.
            if (!ReferenceEquals(connection, _connection) || _disposed.IsCancellationRequested)
            {
                return;
            }

            _connection = null;
            MoveTo(UpstreamState.Reconnecting);
            _reconnecting = ReconnectAsync(connection, reason);
        }

        SocketChanged?.Invoke(this);
    }

    private async Task ReconnectAsync(IUpstreamConnection lost, string reason)
    {
        await Task.Yield(); // leave the socket's receive loop before doing anything slow
        Log.UpstreamLost(_logger, reason);
        _listener.OnLost(reason);
        await lost.DisposeAsync();

        var lostAt = _time.GetTimestamp();
        var failed = Destination;
        if (failed is not null)
        {
            _destinations.Release(failed);
        }

        for (var attempt = 1; !_disposed.IsCancellationRequested; attempt++)
        {
            Uri? destination = null;
            try
            {
                await Task.Delay(Backoff(attempt), _time, _disposed.Token);

                // Another replica first: the one that dropped us may be the one going away.
                destination = _destinations.Acquire(avoid: failed);
                var connection = await OpenAsync(destination, _disposed.Token);
                if (connection.ClosedReason is null && Adopt(connection, destination))
                {
                    Log.UpstreamRestored(_logger, attempt, destination);
                    _listener.OnRestored(attempt, _time.GetElapsedTime(lostAt));
                    SocketChanged?.Invoke(this);
                    CloseIfEnded(connection);
                    return;
                }

                await connection.DisposeAsync();
            }
            catch (OperationCanceledException) when (_disposed.IsCancellationRequested)
            {
            }
            catch (UpstreamUnavailableException e)
            {
                Log.ReconnectFailed(_logger, attempt, e.Message);
                failed = destination;
            }

            if (destination is not null)
            {
                _destinations.Release(destination);
            }
        }
    }

    /// <summary>Counts the session in its new state; called under the lock, so the counts never drift.</summary>
    private void MoveTo(UpstreamState? state)
    {
        if (_state != state)
        {
            _metrics.UpstreamStateChanged(_state, state);
            _state = state;
        }
    }

    /// <summary>Exponential backoff with jitter: half the nominal delay is fixed, half random, so sessions that dropped together spread out.</summary>
    internal TimeSpan Backoff(int attempt)
    {
        var nominal = _options.ReconnectInitialDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30));
        var capped = Math.Min(nominal, _options.ReconnectMaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.5 + Random.Shared.NextDouble() * 0.5));
    }

    public async ValueTask DisposeAsync()
    {
        IUpstreamConnection? connection;
        Task reconnecting;
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return;
            }

            _disposed.Cancel();
            MoveTo(null);
            connection = _connection;
            _connection = null;
            reconnecting = _reconnecting;
        }

        if (connection is not null)
        {
            _destinations.Release(_destination!);
            await connection.DisposeAsync(); // bounded: says goodbye, then cuts
        }

        await reconnecting;
        _disposed.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(3070, LogLevel.Warning, "Upstream Socket.IO session lost ({Reason}); reconnecting.", EventName = "UpstreamLost")]
        public static partial void UpstreamLost(ILogger logger, string reason);

        [LoggerMessage(3071, LogLevel.Information, "Upstream Socket.IO session restored on {Destination} after {Attempts} attempt(s).", EventName = "UpstreamRestored")]
        public static partial void UpstreamRestored(ILogger logger, int attempts, Uri destination);

        [LoggerMessage(3072, LogLevel.Debug, "Opening a Socket.IO session at {Destination} failed: {Reason}", EventName = "UpstreamConnectFailed")]
        public static partial void ConnectFailed(ILogger logger, Uri destination, string reason);

        [LoggerMessage(3073, LogLevel.Debug, "Upstream reconnect attempt {Attempt} failed: {Reason}", EventName = "UpstreamReconnectFailed")]
        public static partial void ReconnectFailed(ILogger logger, int attempt, string reason);
    }
}
