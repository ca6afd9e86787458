using Microsoft.Extensions.Options;
using SocketIOClient.Transport;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// Upstream Socket.IO sockets opened before a client asks for one, so a new hub connection does not wait for
/// TROM.AI's handshake: that wait was about half of a bridged connect (Gateway.Bench/RESULTS.md, 2026-12-02).
/// TROM.AI's handshake carries nothing of the client (no authentication, no headers, no query), so a socket
/// opened ahead is the same as one opened for the client. Each socket goes to one session, once, and is never
/// given back.
/// <para>
/// Filled on demand: each take tops the pool up to <c>Gateway:Upstream:WarmSockets</c>, one socket at a time, with
/// one open for each socket missing or taken since (never more: a socket TROM.AI closes on its own is not replaced
/// until the next take), and a failed open (or a socket closed as soon as it opened) stops the top-up until the
/// next take. A gateway no client uses opens nothing, and a TROM.AI that is down or drops every socket is
/// knocked at no more often than clients knock. A warm socket that TROM.AI closes (a restart) leaves the pool at once.
/// </para>
/// </summary>
internal sealed partial class WarmUpstreamSockets : IAsyncDisposable
{
    public const int MaxSize = 1000;

    private readonly int _size;
    private readonly TimeSpan _connectTimeout;
    private readonly UpstreamDestinations _destinations;
    private readonly GatewayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<WarmSocket> _ready = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task _filling = Task.CompletedTask;
    private bool _fillingNow;
    private int _opensLeft; // of the top-up under way: what was missing when it began, plus one per socket taken since
    private bool _stopped;

    public WarmUpstreamSockets(IOptions<GatewayOptions> options, UpstreamDestinations destinations, GatewayMetrics metrics, ILogger<WarmUpstreamSockets> logger)
    {
        var upstream = options.Value.Upstream;
        // A polling socket is polled for as long as it is open: ahead of need, that is load for nothing.
        _size = upstream.Transport == TransportProtocol.WebSocket ? upstream.WarmSockets : 0;
        _connectTimeout = upstream.ConnectTimeout;
        _destinations = destinations;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>How many sockets wait to be taken.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _ready.Count;
            }
        }
    }

    /// <summary>Whether a top-up is under way (for tests: it must end even when TROM.AI keeps closing what it opens).</summary>
    internal bool IsFilling
    {
        get
        {
            lock (_gate)
            {
                return _fillingNow;
            }
        }
    }

    /// <summary>
    /// The oldest open socket, now the caller's (with its place on <see cref="WarmSocket.Destination"/>), or null
    /// when none is ready; either way the pool starts topping itself up.
    /// </summary>
    public WarmSocket? TryTake()
    {
        if (_size == 0)
        {
            return null;
        }

        lock (_gate)
        {
            if (_stopped)
            {
                return null;
            }

            WarmSocket? taken = null;
            // One that has just closed is being removed by its own callback: leave it to that.
            var i = _ready.FindIndex(socket => socket.Connection.ClosedReason is null);
            if (i >= 0)
            {
                taken = _ready[i];
                _ready.RemoveAt(i);
                _metrics.WarmSocketsChanged(-1);
            }

            if (!_fillingNow)
            {
                _fillingNow = true;
                _opensLeft = _size - _ready.Count;
                _filling = FillAsync();
            }
            else if (taken is not null)
            {
                _opensLeft++; // its replacement
            }

            return taken;
        }
    }

    private async Task FillAsync()
    {
        await Task.Yield(); // off the taker's path, and out of the lock
        while (true)
        {
            lock (_gate)
            {
                // Opens are counted, not only the pool's size: sockets that TROM.AI closes soon after they opened
                // would otherwise keep the pool below its size and this loop going.
                if (_stopped || _ready.Count >= _size || _opensLeft == 0)
                {
                    _fillingNow = false;
                    return;
                }

                _opensLeft--;
            }

            var destination = _destinations.Acquire();
            WebSocketUpstreamConnection connection;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                timeout.CancelAfter(_connectTimeout);
                connection = await WebSocketUpstreamConnection.ConnectAsync(destination, Unclaimed.Instance, OnClosedWhileWarm, timeout.Token);
            }
            catch (Exception e)
            {
                _destinations.Release(destination);
                if (!_stopping.IsCancellationRequested)
                {
                    Log.OpenFailed(_logger, destination, e.Message);
                }

                lock (_gate)
                {
                    _fillingNow = false;
                }

                return;
            }

            lock (_gate)
            {
                // Its close, if it came already, found it outside the pool and left it to us.
                if (!_stopped && connection.ClosedReason is null)
                {
                    _ready.Add(new WarmSocket(connection, destination));
                    _metrics.WarmSocketsChanged(1);
                    continue;
                }

                // Stopped, or closed as soon as opened: a failure like any other, so an upstream that drops
                // every socket at once is not asked again until the next take.
                _fillingNow = false;
            }

            _destinations.Release(destination);
            await connection.DisposeAsync();
            return;
        }
    }

    /// <summary>The close of a socket no session has attached to yet: one still in the pool leaves it.</summary>
    private void OnClosedWhileWarm(IUpstreamConnection connection, string reason)
    {
        WarmSocket closed;
        lock (_gate)
        {
            var i = _ready.FindIndex(socket => ReferenceEquals(socket.Connection, connection));
            if (i < 0)
            {
                return; // taken (its session sees ClosedReason) or not yet added (FillAsync sees it)
            }

            closed = _ready[i];
            _ready.RemoveAt(i);
            _metrics.WarmSocketsChanged(-1);
        }

        Log.ClosedWhileWarm(_logger, reason);
        _destinations.Release(closed.Destination);
        _ = Task.Run(async () => await closed.Connection.DisposeAsync()); // not on the socket's own receive loop
    }

    public async ValueTask DisposeAsync()
    {
        WarmSocket[] left;
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            left = [.. _ready];
            _ready.Clear();
            _metrics.WarmSocketsChanged(-left.Length);
        }

        await _stopping.CancelAsync(); // an open in flight ends, outside the lock
        await _filling;
        foreach (var socket in left)
        {
            _destinations.Release(socket.Destination);
            await socket.Connection.DisposeAsync();
        }

        _stopping.Dispose();
    }

    /// <summary>What hears a warm socket until a session takes it: nothing is addressed to a socket whose id no one was told.</summary>
    private sealed class Unclaimed : IUpstreamListener
    {
        public static readonly Unclaimed Instance = new();

        public void OnEvent(string name, object?[] args)
        {
        }

        public void OnEvent(string name, EventArguments args)
        {
        }

        public void OnLost(string reason)
        {
        }

        public void OnRestored(int attempts, TimeSpan downtime)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3077, LogLevel.Debug, "Opening a warm Socket.IO socket at {Destination} failed ({Reason}); the next new connection tries again.", EventName = "WarmSocketOpenFailed")]
        public static partial void OpenFailed(ILogger logger, Uri destination, string reason);

        [LoggerMessage(3078, LogLevel.Debug, "A warm Socket.IO socket closed before any connection took it: {Reason}", EventName = "WarmSocketClosed")]
        public static partial void ClosedWhileWarm(ILogger logger, string reason);
    }
}

/// <summary>An open upstream socket from <see cref="WarmUpstreamSockets"/> and the replica place it holds.</summary>
internal sealed record WarmSocket(WebSocketUpstreamConnection Connection, Uri Destination);
