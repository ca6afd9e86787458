using SocketIOClient;
using SocketIOClient.Transport;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// One SignalR connection's Socket.IO session with TROM.AI. It owns the reconnect policy, because
/// SocketIOClient's own retries every ~1 s with neither backoff nor jitter: after an upstream
/// restart every gateway session would knock at once. Each attempt opens a fresh client, so no
/// state of a dead socket leaks into the next one.
/// </summary>
internal sealed partial class UpstreamSession : IAsyncDisposable
{
    // SocketIOClient's DisconnectAsync can hang for minutes after a network cut.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly UpstreamOptions _options;
    private readonly UpstreamDestinations _destinations;
    private readonly IUpstreamListener _listener;
    private readonly GatewayMetrics _metrics;
    private UpstreamState? _state;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _disposed = new();
    private readonly Lock _gate = new();
    private SocketIO? _socket;
    private UpstreamWebSocket? _transport;
    private Uri? _destination;
    private Task _reconnecting = Task.CompletedTask;

    public UpstreamSession(UpstreamOptions options, UpstreamDestinations destinations, IUpstreamListener listener, TimeProvider time, GatewayMetrics metrics, ILogger logger)
    {
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
                return _socket?.Id;
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
    public async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        UpstreamWebSocket? transport;
        lock (_gate)
        {
            transport = _socket is null ? null : _transport;
        }

        if (transport is null)
        {
            return false;
        }

        await transport.FlushAsync(cancellationToken);
        return true;
    }

    /// <summary>Raised when the session's socket goes away or comes back: its <see cref="SocketId"/> changed.</summary>
    public event Action<UpstreamSession>? SocketChanged;

    /// <summary>
    /// Opens the session on the least loaded replica, trying each replica once; completes when one
    /// has accepted the socket.
    /// </summary>
    /// <exception cref="UpstreamUnavailableException">No replica accepted it within the configured time.</exception>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            MoveTo(UpstreamState.Connecting);
        }

        Uri? failed = null;
        for (var attempt = 1; ; attempt++)
        {
            var destination = _destinations.Acquire(avoid: failed);
            try
            {
                var (socket, transport) = await OpenAsync(destination, cancellationToken);
                lock (_gate)
                {
                    if (!_disposed.IsCancellationRequested)
                    {
                        _socket = socket;
                        _transport = transport;
                        _destination = destination;
                        MoveTo(UpstreamState.Connected);
                        return;
                    }
                }

                _destinations.Release(destination);
                await CloseAsync(socket);
                throw new ObjectDisposedException(nameof(UpstreamSession));
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

    private async Task<(SocketIO Socket, UpstreamWebSocket? Transport)> OpenAsync(Uri destination, CancellationToken cancellationToken)
    {
        var socket = new SocketIO(destination, new SocketIOOptions
        {
            Transport = _options.Transport,
            Reconnection = false,
            ConnectionTimeout = _options.ConnectTimeout,
        });

        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        socket.OnConnected += (_, _) => connected.TrySetResult();
        socket.OnError += (_, error) => connected.TrySetException(new UpstreamUnavailableException(error));
        socket.OnDisconnected += (sender, reason) => OnDisconnected((SocketIO)sender!, reason);
        socket.OnAny((name, response) => _listener.OnEvent(name, UpstreamPayload.ToArguments(response)));
        var binaryEventNames = new HashSet<string>(StringComparer.Ordinal); // touched only on the receive loop
        UpstreamWebSocket? transport = null; // stays null on the polling transport
        socket.ClientWebSocketProvider = () => transport = new UpstreamWebSocket(
            name =>
            {
                if (binaryEventNames.Add(name))
                {
                    RelayBinaryEvents(socket, name);
                }
            },
            _listener.WaitForRoomAsync,
            _logger);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            // ConnectAsync can return before the server has accepted the socket; Id is only valid after OnConnected.
            await socket.ConnectAsync().WaitAsync(timeout.Token);
            await connected.Task.WaitAsync(timeout.Token);
            return (socket, transport);
        }
        catch (Exception e)
        {
            await CloseAsync(socket);
            if (_disposed.IsCancellationRequested || cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The upstream session was closed while connecting.", e);
            }

            // The client sees why, never where: the address stays in the log.
            Log.ConnectFailed(_logger, destination, e.Message);
            var reason = e is OperationCanceledException ? $"no answer within {_options.ConnectTimeout.TotalSeconds:0.###} s" : "it is unreachable";
            throw new UpstreamUnavailableException($"TROM.AI did not open a Socket.IO session: {reason}.", e);
        }
    }

    /// <summary>
    /// Registers a named handler the first time a binary event of that name arrives. It relays only
    /// events with attachments: the others of that name already reach <c>OnAny</c>.
    /// </summary>
    private void RelayBinaryEvents(SocketIO socket, string name) =>
        socket.On(name, response =>
        {
            if (response.InComingBytes is { Count: > 0 })
            {
                _listener.OnEvent(name, UpstreamPayload.ToArguments(response));
            }
        });

    private void OnDisconnected(SocketIO socket, string reason)
    {
        lock (_gate)
        {
            // A socket we replaced or closed ourselves says goodbye too; only the live one counts.
            if (!ReferenceEquals(socket, _socket) || _disposed.IsCancellationRequested)
            {
                return;
            }

            _socket = null;
            MoveTo(UpstreamState.Reconnecting);
            _reconnecting = ReconnectAsync(socket, reason);
        }

        SocketChanged?.Invoke(this);
    }

    private async Task ReconnectAsync(SocketIO lost, string reason)
    {
        await Task.Yield(); // leave SocketIOClient's receive loop before doing anything slow
        Log.UpstreamLost(_logger, reason);
        _listener.OnLost(reason);
        await CloseAsync(lost);

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
                var (socket, transport) = await OpenAsync(destination, _disposed.Token);
                var adopted = false;
                lock (_gate)
                {
                    if (!_disposed.IsCancellationRequested && socket.Connected)
                    {
                        _socket = socket;
                        _transport = transport;
                        _destination = destination;
                        MoveTo(UpstreamState.Connected);
                        adopted = true;
                    }
                }

                if (adopted)
                {
                    Log.UpstreamRestored(_logger, attempt, destination);
                    _listener.OnRestored(attempt, _time.GetElapsedTime(lostAt));
                    SocketChanged?.Invoke(this);
                    return;
                }

                await CloseAsync(socket);
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
        SocketIO? socket;
        Task reconnecting;
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return;
            }

            _disposed.Cancel();
            MoveTo(null);
            socket = _socket;
            _socket = null;
            reconnecting = _reconnecting;
        }

        if (socket is not null)
        {
            _destinations.Release(_destination!);
            await CloseAsync(socket);
        }

        await reconnecting;
        _disposed.Dispose();
    }

    private static async Task CloseAsync(SocketIO socket)
    {
        try
        {
            if (socket.Connected)
            {
                // Tells the upstream at once that the socket is gone, instead of after its ping timeout.
                await socket.DisconnectAsync().WaitAsync(CloseTimeout);
            }
        }
        catch (Exception)
        {
            // The socket is being thrown away; a failed goodbye changes nothing.
        }
        finally
        {
            socket.Dispose();
        }
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
