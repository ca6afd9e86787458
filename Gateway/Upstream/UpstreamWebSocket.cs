using System.Buffers;
using System.Collections.Immutable;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using SocketIOClient.Transport;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The WebSocket under SocketIOClient, owned by the gateway for four reasons:
/// <list type="bullet">
/// <item>SocketIOClient 3.0.6 hands events with binary attachments only to handlers registered by
/// name, never to <c>OnAny</c>; seeing each binary event's header frame first lets the session
/// register a named handler before the attachments complete.</item>
/// <item>Its own socket allocates two 8 KB buffers per received message; this one reads into one
/// pooled buffer, which matters on the relay's hot path.</item>
/// <item>It can send a barrier (<see cref="FlushAsync"/>) that tells when every event the upstream
/// wrote before it has been received.</item>
/// <item>It reads the next frame only once the session's listener has room for another event
/// (backpressure, see <c>ConnectionRelay</c>), and a frame SocketIOClient cannot parse ends the
/// socket (the session then reconnects) instead of silently ending the reading.</item>
/// </list>
/// </summary>
internal sealed partial class UpstreamWebSocket : IClientWebSocket
{
    // Namespaces nobody registers: socket.io answers a CONNECT to one with a CONNECT_ERROR on the same
    // connection, after everything it wrote before. That answer is the barrier. Each barrier has its
    // own namespace, so a reply names the barrier it answers: one that was never sent (cancelled
    // first) cannot make every later one complete a reply early.
    private const string BarrierNamespacePrefix = "/tromai-gateway-barrier-";
    private const string BarrierReplyPrefix = $"44{BarrierNamespacePrefix}";

    private readonly ClientWebSocket _socket = new();
    private readonly Observers<string> _text = new();
    private readonly Observers<byte[]> _bytes = new();
    private readonly SemaphoreSlim _sending = new(1, 1); // ClientWebSocket allows one send at a time
    private readonly CancellationTokenSource _closed = new();
    private readonly Action<string> _onBinaryEvent;
    private readonly Func<CancellationToken, ValueTask> _waitForRoom;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private Dictionary<long, TaskCompletionSource>? _barriers;
    private long _lastBarrier;
    private bool _receiving = true;

    /// <param name="onBinaryEvent">Called on the receive loop with the name of each binary event, before its attachments.</param>
    /// <param name="waitForRoom">Awaited on the receive loop after each frame: the next frame is read once it completes.</param>
    public UpstreamWebSocket(Action<string> onBinaryEvent, Func<CancellationToken, ValueTask> waitForRoom, ILogger logger)
    {
        _onBinaryEvent = onBinaryEvent;
        _waitForRoom = waitForRoom;
        _logger = logger;
    }

    /// <summary>Without backpressure and logging: for a client that is not the gateway's (the bench's direct path).</summary>
    public UpstreamWebSocket(Action<string> onBinaryEvent)
        : this(onBinaryEvent, static _ => ValueTask.CompletedTask, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
    {
    }

    public IObservable<string> TextObservable => _text;

    public IObservable<byte[]> BytesObservable => _bytes;

    public async Task ConnectAsync(Uri uri, CancellationToken cancellationToken)
    {
        await _socket.ConnectAsync(uri, cancellationToken);
        _ = Task.Run(ReceiveAsync, CancellationToken.None); // observes its own failures: it never throws
    }

    public Task DisconnectAsync(CancellationToken cancellationToken) =>
        _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, string.Empty, cancellationToken);

    public async Task SendAsync(byte[] bytes, TransportMessageType type, bool endOfMessage, CancellationToken cancellationToken)
    {
        var messageType = type == TransportMessageType.Binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text;
        await _sending.WaitAsync(cancellationToken);
        try
        {
            await _socket.SendAsync(bytes, messageType, endOfMessage, cancellationToken);
        }
        finally
        {
            _sending.Release();
        }
    }

    public void AddHeader(string key, string val) => _socket.Options.SetRequestHeader(key, val);

    /// <summary>
    /// Completes once every frame the upstream sent before answering this call has been received and
    /// handed to SocketIOClient (and so, for events, to the session's listener).
    /// </summary>
    /// <exception cref="WebSocketException">The socket closed before the barrier came back.</exception>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long id;
        lock (_gate)
        {
            if (!_receiving)
            {
                throw new WebSocketException("The upstream WebSocket is closed.");
            }

            id = ++_lastBarrier;
            (_barriers ??= []).Add(id, barrier);
        }

        try
        {
            await SendAsync(Encoding.ASCII.GetBytes($"40{BarrierNamespacePrefix}{id},"), TransportMessageType.Text, true, cancellationToken);
            await barrier.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_gate)
            {
                _barriers?.Remove(id); // answered, or given up on: a late reply then finds nothing
            }
        }
    }

    private async Task ReceiveAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        Exception? ended = null;
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (count == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    result = await _socket.ReceiveAsync(buffer.AsMemory(count), _closed.Token);
                    count += result.Count;
                }
                while (!result.EndOfMessage);

                switch (result.MessageType)
                {
                    case WebSocketMessageType.Text:
                        OnText(Encoding.UTF8.GetString(buffer, 0, count));
                        break;
                    case WebSocketMessageType.Binary:
                        _bytes.OnNext(buffer.AsSpan(0, count).ToArray());
                        break;
                    default:
                        ended = new WebSocketException("The upstream closed the WebSocket.");
                        return;
                }

                // Backpressure: while the listener is full, the next frame stays in the socket and
                // TCP slows TROM.AI down. Engine.IO's pings wait in the socket too, so the listener
                // must bound this wait well below TROM.AI's ping timeout (ConnectionRelay does).
                await _waitForRoom(_closed.Token);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            ended = e is WebSocketException ? e : new WebSocketException("The upstream WebSocket was closed.", e);
        }
        catch (Exception e)
        {
            // A frame SocketIOClient could not parse (it throws on this loop): what follows on this
            // socket can no longer be trusted to be in order. End the socket; the session reconnects.
            Log.UnreadableFrame(_logger, e);
            ended = new WebSocketException("The upstream sent a frame that could not be read.", e);
            _socket.Abort();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            FailBarriers();
            if (ended is not null)
            {
                _text.OnError(ended); // SocketIOClient then reports the disconnection to the session
            }
        }
    }

    private void OnText(string frame)
    {
        if (frame.StartsWith(BarrierReplyPrefix, StringComparison.Ordinal))
        {
            CompleteBarrier(frame); // ours alone: SocketIOClient would take it for an error of its own namespace
            return;
        }

        if (BinaryEventName(frame) is { } name)
        {
            _onBinaryEvent(name);
        }

        _text.OnNext(frame);
    }

    private void CompleteBarrier(string reply)
    {
        var digits = reply.AsSpan(BarrierReplyPrefix.Length);
        var end = digits.IndexOf(',');
        if (end < 0 || !long.TryParse(digits[..end], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return;
        }

        lock (_gate)
        {
            if (_barriers is not null && _barriers.Remove(id, out var barrier))
            {
                barrier.TrySetResult();
            }
        }
    }

    private void FailBarriers()
    {
        lock (_gate)
        {
            _receiving = false;
            foreach (var barrier in _barriers?.Values ?? Enumerable.Empty<TaskCompletionSource>())
            {
                barrier.TrySetException(new WebSocketException("The upstream WebSocket closed before the barrier came back."));
            }

            _barriers?.Clear();
        }
    }

    /// <summary>
    /// The name in an Engine.IO message carrying a Socket.IO binary event: <c>45&lt;n&gt;-[/nsp,][id]["name",...]</c>.
    /// </summary>
    internal static string? BinaryEventName(string frame)
    {
        if (frame.Length < 4 || frame[0] != '4' || frame[1] != '5')
        {
            return null;
        }

        var start = frame.IndexOf('[');
        if (start < 0)
        {
            return null;
        }

        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(frame, start, Math.Min(frame.Length - start, 1024)), isFinalBlock: false, default);
        try
        {
            return reader.Read() && reader.TokenType == JsonTokenType.StartArray && reader.Read() && reader.TokenType == JsonTokenType.String
                ? reader.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _closed.Cancel();
        _socket.Dispose();
    }

    /// <summary>The observers SocketIOClient subscribes, called in order on the receive loop.</summary>
    private sealed class Observers<T> : IObservable<T>
    {
        private IObserver<T>[] _observers = [];

        public IDisposable Subscribe(IObserver<T> observer)
        {
            ImmutableInterlocked.Update(ref _observers, static (list, added) => [.. list, added], observer);
            return new Subscription(this, observer);
        }

        public void OnNext(T value)
        {
            foreach (var observer in _observers)
            {
                observer.OnNext(value);
            }
        }

        public void OnError(Exception error)
        {
            foreach (var observer in _observers)
            {
                observer.OnError(error);
            }
        }

        private sealed class Subscription(Observers<T> owner, IObserver<T> observer) : IDisposable
        {
            public void Dispose() =>
                ImmutableInterlocked.Update(ref owner._observers, static (list, removed) => Array.FindAll(list, o => !ReferenceEquals(o, removed)), observer);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3060, LogLevel.Warning, "TROM.AI sent a Socket.IO frame that could not be read; closing the upstream socket to reconnect.", EventName = "UpstreamUnreadableFrame")]
        public static partial void UnreadableFrame(ILogger logger, Exception exception);
    }
}
