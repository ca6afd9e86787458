using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using SocketIOClient.Transport;

namespace TromAi.Gateway.Bench.Readers;

/// <summary>
/// The WebSocket the gateway put under SocketIOClient 3.0.6 until it read TROM.AI with its own client: one pooled
/// receive buffer per connection instead of SocketIOClient's two 8 KB buffers per message. Kept here so the reader
/// scenario compares SocketIOClient as the gateway used it, not as it ships.
/// </summary>
internal sealed class PooledClientWebSocket : IClientWebSocket
{
    private readonly ClientWebSocket _socket = new();
    private readonly Subject<string> _text = new();
    private readonly Subject<byte[]> _bytes = new();
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly CancellationTokenSource _closed = new();

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
        await _sending.WaitAsync(cancellationToken);
        try
        {
            await _socket.SendAsync(bytes, type == TransportMessageType.Binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, endOfMessage, cancellationToken);
        }
        finally
        {
            _sending.Release();
        }
    }

    public void AddHeader(string key, string val) => _socket.Options.SetRequestHeader(key, val);

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
                        _text.OnNext(Encoding.UTF8.GetString(buffer, 0, count));
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
        catch (Exception e)
        {
            _text.OnError(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        _closed.Cancel();
        _socket.Dispose();
    }

    /// <summary>The observers SocketIOClient subscribes, called in order on the receive loop.</summary>
    private sealed class Subject<T> : IObservable<T>
    {
        private readonly List<IObserver<T>> _observers = [];

        public IDisposable Subscribe(IObserver<T> observer)
        {
            lock (_observers)
            {
                _observers.Add(observer);
            }

            return new Subscription(this, observer);
        }

        public void OnNext(T value)
        {
            foreach (var observer in Snapshot())
            {
                observer.OnNext(value);
            }
        }

        public void OnError(Exception error)
        {
            foreach (var observer in Snapshot())
            {
                observer.OnError(error);
            }
        }

        private IObserver<T>[] Snapshot()
        {
            lock (_observers)
            {
                return [.. _observers];
            }
        }

        private sealed class Subscription(Subject<T> owner, IObserver<T> observer) : IDisposable
        {
            public void Dispose()
            {
                lock (owner._observers)
                {
                    owner._observers.Remove(observer);
                }
            }
        }
    }
}
