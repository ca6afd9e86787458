using System.Text;
using System.Text.Json;
using SocketIOClient.Transport;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// SocketIOClient 3.0.6 hands events with binary attachments only to handlers registered by name
/// (<c>On</c>), never to <c>OnAny</c>, so a relay that must pass every event would lose them. This
/// wrapper around its WebSocket sees each binary event's header frame before the client parses it
/// and reports the event's name, so a named handler exists by the time the attachments complete.
/// </summary>
internal sealed class BinaryEventWatcher(IClientWebSocket inner, Action<string> onBinaryEvent) : IClientWebSocket
{
    public IObservable<string> TextObservable { get; } = new Watching(inner.TextObservable, onBinaryEvent);

    public IObservable<byte[]> BytesObservable => inner.BytesObservable;

    public Task ConnectAsync(Uri uri, CancellationToken cancellationToken) => inner.ConnectAsync(uri, cancellationToken);

    public Task DisconnectAsync(CancellationToken cancellationToken) => inner.DisconnectAsync(cancellationToken);

    public Task SendAsync(byte[] bytes, TransportMessageType type, bool endOfMessage, CancellationToken cancellationToken) =>
        inner.SendAsync(bytes, type, endOfMessage, cancellationToken);

    public void AddHeader(string key, string val) => inner.AddHeader(key, val);

    public void Dispose() => inner.Dispose();

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

    private sealed class Watching(IObservable<string> frames, Action<string> onBinaryEvent) : IObservable<string>
    {
        public IDisposable Subscribe(IObserver<string> observer) => frames.Subscribe(new Observer(observer, onBinaryEvent));
    }

    private sealed class Observer(IObserver<string> next, Action<string> onBinaryEvent) : IObserver<string>
    {
        public void OnNext(string frame)
        {
            if (BinaryEventName(frame) is { } name)
            {
                onBinaryEvent(name);
            }

            next.OnNext(frame);
        }

        public void OnError(Exception error) => next.OnError(error);

        public void OnCompleted() => next.OnCompleted();
    }
}
