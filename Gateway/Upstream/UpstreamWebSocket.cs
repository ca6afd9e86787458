using System.Buffers;
using System.Collections.Immutable;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using SocketIOClient.Transport;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The WebSocket under SocketIOClient, owned by the gateway for three reasons:
/// <list type="bullet">
/// <item>SocketIOClient 3.0.6 hands events with binary attachments only to handlers registered by
/// name, never to <c>OnAny</c>; seeing each binary event's header frame first lets the session
/// register a named handler before the attachments complete.</item>
/// <item>Its own socket allocates two 8 KB buffers per received message; this one reads into one
/// pooled buffer, which matters on the relay's hot path.</item>
/// <item>It can send a barrier (<see cref="FlushAsync"/>) that tells when every event the upstream
/// wrote before it has been received.</item>
/// </list>
/// </summary>
internal sealed class UpstreamWebSocket : IClientWebSocket
{
    // A namespace nobody registers: socket.io answers its CONNECT with a CONNECT_ERROR on the same
    // connection, after everything it wrote before. That answer is the barrier.
    private const string BarrierNamespace = "/tromai-gateway-barrier";
    private static readonly byte[] BarrierRequest = Encoding.ASCII.GetBytes($"40{BarrierNamespace},");
    private const string BarrierReplyPrefix = $"44{BarrierNamespace},";

    private readonly ClientWebSocket _socket = new();
    private readonly Observers<string> _text = new();
    private readonly Observers<byte[]> _bytes = new();
    private readonly SemaphoreSlim _sending = new(1, 1); // ClientWebSocket allows one send at a time
    private readonly CancellationTokenSource _closed = new();
    private readonly Action<string> _onBinaryEvent;
    private readonly Lock _gate = new();
    private Queue<TaskCompletionSource>? _barriers;

    public UpstreamWebSocket(Action<string> onBinaryEvent) => _onBinaryEvent = onBinaryEvent;

    public IObservable<string> TextObservable => _text;

    public IObservable<byte[]> BytesObservable => _bytes;

    public async Task ConnectAsync(Uri uri, CancellationToken cancellationToken)
    {
        await _socket.ConnectAsync(uri, cancellationToken);
        _ = Task.Run(ReceiveAsync, CancellationToken.None);
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
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            (_barriers ??= new()).Enqueue(barrier);
        }

        await SendAsync(BarrierRequest, TransportMessageType.Text, true, cancellationToken);
        await barrier.Task.WaitAsync(cancellationToken);
    }

    private async Task ReceiveAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
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
                        _text.OnError(new WebSocketException("The upstream closed the WebSocket."));
                        return;
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            _text.OnError(e is WebSocketException ? e : new WebSocketException("The upstream WebSocket was closed.", e));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            FailBarriers();
        }
    }

    private void OnText(string frame)
    {
        if (frame.StartsWith(BarrierReplyPrefix, StringComparison.Ordinal))
        {
            CompleteBarrier(); // ours alone: SocketIOClient would take it for an error of its own namespace
            return;
        }

        if (BinaryEventName(frame) is { } name)
        {
            _onBinaryEvent(name);
        }

        _text.OnNext(frame);
    }

    private void CompleteBarrier()
    {
        lock (_gate)
        {
            if (_barriers is { Count: > 0 })
            {
                _barriers.Dequeue().TrySetResult();
            }
        }
    }

    private void FailBarriers()
    {
        lock (_gate)
        {
            while (_barriers is { Count: > 0 })
            {
                _barriers.Dequeue().TrySetException(new WebSocketException("The upstream WebSocket closed before the barrier came back."));
            }
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
}
