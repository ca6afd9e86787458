using System.Buffers;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// A Socket.IO v5 client on Engine.IO v4's WebSocket transport, for the main namespace only: what
/// the gateway needs from TROM.AI, and no more. It replaces SocketIOClient 3.0.6 on the WebSocket
/// path (polling stays there) because that client decodes each frame to a string, parses it into
/// JsonElements and hops threads before its handlers run: measured in Gateway.Bench/RESULTS.md
/// ("Socket.IO reader"), this one allocates a fraction per event and spends a fraction of the CPU.
/// </summary>
/// <remarks>
/// <para>One receive loop reads a message, parses it once and calls the listener, on the thread the
/// read completed on: there is no queue or thread-pool hop of its own in between. While idle it waits
/// with a zero-byte read and holds no buffer; a buffer is rented per message.</para>
/// <para>Whatever ends the connection (the upstream's close or disconnect, a missed heartbeat, a
/// malformed frame, a failing listener, <see cref="DisposeAsync"/>) ends it once, with a reason that
/// <see cref="Closed"/> and <see cref="ISocketIOListener.OnClosed"/> report.</para>
/// </remarks>
internal sealed class SocketIOConnection : IAsyncDisposable
{
    // A namespace nobody registers: socket.io answers its CONNECT with a CONNECT_ERROR on the same
    // connection, after everything it wrote before. Each barrier names its own, so a reply matches
    // its request even when an earlier barrier was given up.
    private const string BarrierNamespacePrefix = "/tromai-gateway-barrier-";
    private const int FirstBufferBytes = 4096;
    private static readonly byte[] ConnectPacket = "40"u8.ToArray();
    private static readonly byte[] DisconnectPacket = "41"u8.ToArray();
    private static readonly byte[] PongPacket = "3"u8.ToArray();

    private readonly WebSocket _socket;
    private readonly ISocketIOListener _listener;
    private readonly SocketIOConnectionOptions _options;
    private readonly SemaphoreSlim _sending = new(1, 1); // a WebSocket takes one send at a time
    private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _ending = new(); // cancelled by End: wakes a listener's wait for room
    private readonly Lock _gate = new();
    private Dictionary<long, TaskCompletionSource>? _barriers;
    private long _lastBarrier;
    private ITimer? _heartbeat;
    private TimeSpan _heartbeatTimeout;
    private string? _closeReason;
    private bool _opened;
    private volatile bool _isConnected;
    private int _disposed;
    private Task _receiving = Task.CompletedTask;

    // A binary event waiting for its attachments (touched only by the receive loop).
    private string? _binaryName;
    private object?[]? _binaryArgs;
    private List<byte[]>? _attachments;
    private int _attachmentsExpected;

    private SocketIOConnection(WebSocket socket, ISocketIOListener listener, SocketIOConnectionOptions options)
    {
        _socket = socket;
        _listener = listener;
        _options = options;
    }

    /// <summary>The socket's id on the server (what <c>io.to(id)</c> addresses, TROM.AI's <c>socketIOClientId</c>).</summary>
    public string SocketId { get; private set; } = "";

    /// <summary>Completes with the reason once the connection has ended; never faults.</summary>
    public Task<string> Closed => _closed.Task;

    /// <summary>
    /// Opens a WebSocket to <c>&lt;baseUrl&gt;socket.io/?EIO=4&amp;transport=websocket</c>, completes the Engine.IO
    /// handshake and connects to the main namespace; completes once the server has accepted the socket.
    /// </summary>
    /// <exception cref="SocketIOClosedException">The server refused, closed, or answered something else.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<SocketIOConnection> ConnectAsync(Uri baseUrl, ISocketIOListener listener, SocketIOConnectionOptions? options, CancellationToken cancellationToken)
    {
        var socket = await WebSocketHandshake.ConnectAsync(EndpointOf(baseUrl), cancellationToken);
        var connection = new SocketIOConnection(socket, listener, options ?? SocketIOConnectionOptions.Default);
        try
        {
            // Not Task.Run: the loop runs here up to its first read, and from then on where each read completes.
            connection._receiving = connection.ReceiveAsync();
            await connection._connected.Task.WaitAsync(cancellationToken);
            return connection;
        }
        catch (Exception e)
        {
            connection.End(e is OperationCanceledException ? "connect cancelled" : e.Message);
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The Engine.IO endpoint under <paramref name="baseUrl"/>: its path is kept, so a TROM.AI behind a sub-path works.</summary>
    internal static Uri EndpointOf(Uri baseUrl)
    {
        var builder = new UriBuilder(baseUrl)
        {
            Scheme = baseUrl.Scheme == Uri.UriSchemeHttps || baseUrl.Scheme == "wss" ? "wss" : "ws",
            Query = "EIO=4&transport=websocket",
            Fragment = "",
        };
        builder.Path = builder.Path.TrimEnd('/') + "/socket.io/";
        return builder.Uri;
    }

    /// <summary>
    /// Completes once every packet the upstream sent before answering this call has been received and
    /// handed to the listener. Barriers complete in the order they were sent; giving one up (cancelling)
    /// leaves the others matched to their own replies.
    /// </summary>
    /// <exception cref="SocketIOClosedException">The connection ended first.</exception>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long id;
        lock (_gate)
        {
            if (_closeReason is { } reason)
            {
                throw new SocketIOClosedException(reason);
            }

            id = ++_lastBarrier;
            (_barriers ??= []).Add(id, barrier);
        }

        try
        {
            await SendAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"40{BarrierNamespacePrefix}{id},")), cancellationToken);
            await barrier.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_gate)
            {
                _barriers?.Remove(id);
            }
        }
    }

    /// <summary>Says goodbye to the server (Socket.IO disconnect, then the WebSocket close), bounded in time, and ends the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        var polite = _isConnected && _socket.State == WebSocketState.Open;
        End("closed by the gateway", abort: !polite);
        if (polite)
        {
            try
            {
                using var timeout = new CancellationTokenSource(_options.CloseTimeout);
                await SendAsync(DisconnectPacket, timeout.Token);
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
                await _receiving.WaitAsync(timeout.Token); // the server's close frame ends the loop
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or SocketIOClosedException or ObjectDisposedException)
            {
                // The upstream does not answer; the abort below closes the connection anyway.
            }
        }

        _socket.Abort();
        await _receiving;
        _socket.Dispose();
        _ending.Dispose();
    }

    private async Task ReceiveAsync()
    {
        string? reason = null;
        try
        {
            // Zero-byte reads (the default) hold no buffer while idle; a small held buffer takes a token in one read.
            var held = _options.HeldReceiveBufferBytes > 0 ? new byte[_options.HeldReceiveBufferBytes] : null;
            while (Volatile.Read(ref _closeReason) is null)
            {
                var first = await _socket.ReceiveAsync(held is null ? Memory<byte>.Empty : held.AsMemory(), CancellationToken.None);
                if (first.MessageType == WebSocketMessageType.Close)
                {
                    reason = $"the upstream closed the WebSocket ({_socket.CloseStatus}{(string.IsNullOrEmpty(_socket.CloseStatusDescription) ? "" : ": " + _socket.CloseStatusDescription)})";
                    break;
                }

                if (held is not null && first.EndOfMessage)
                {
                    var heldReply = Dispatch(first.MessageType, held.AsSpan(0, first.Count));
                    if (heldReply is not null)
                    {
                        await SendAsync(heldReply, CancellationToken.None);
                    }

                    await _listener.WaitForRoomAsync(_ending.Token);
                    continue;
                }

                var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(FirstBufferBytes, first.Count * 2));
                try
                {
                    var count = first.Count;
                    held?.AsSpan(0, count).CopyTo(buffer);
                    var result = first;
                    while (!result.EndOfMessage)
                    {
                        if (count == buffer.Length)
                        {
                            buffer = Grow(buffer, count);
                        }

                        result = await _socket.ReceiveAsync(buffer.AsMemory(count), CancellationToken.None);
                        count += result.Count;
                    }

                    var reply = Dispatch(first.MessageType, buffer.AsSpan(0, count));
                    if (reply is not null)
                    {
                        await SendAsync(reply, CancellationToken.None);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }

                // Backpressure, with no buffer held: while the listener is full, the next message stays in
                // the socket and TCP slows the upstream down.
                await _listener.WaitForRoomAsync(_ending.Token);
            }
        }
        catch (SocketIOProtocolException e)
        {
            reason = $"a malformed frame from the upstream: {e.Message}";
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or SocketIOClosedException)
        {
            reason = $"the WebSocket to the upstream failed: {e.Message}";
        }
        catch (Exception e)
        {
            // The listener threw, or a bug here: the connection cannot go on in a known state.
            reason = $"the receive loop failed: {e.GetType().Name}: {e.Message}";
        }
        finally
        {
            Finish(reason ?? "the connection ended");
        }
    }

    private byte[]? Dispatch(WebSocketMessageType type, ReadOnlySpan<byte> message) =>
        type == WebSocketMessageType.Text ? OnText(message) : OnBinary(message);

    private byte[] Grow(byte[] buffer, int count)
    {
        if (buffer.Length >= _options.MaxMessageBytes)
        {
            throw new SocketIOProtocolException($"a message larger than {_options.MaxMessageBytes} bytes");
        }

        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, _options.MaxMessageBytes));
        buffer.AsSpan(0, count).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(buffer);
        return larger;
    }

    /// <returns>A packet to send back (pong, connect), or null.</returns>
    private byte[]? OnText(ReadOnlySpan<byte> frame)
    {
        if (frame.IsEmpty)
        {
            throw new SocketIOProtocolException("an empty text frame");
        }

        switch (frame[0])
        {
            case (byte)'4': // message: a Socket.IO packet
                if (!_opened)
                {
                    throw new SocketIOProtocolException("a message before the Engine.IO handshake");
                }

                OnPacket(frame[1..]);
                return null;
            case (byte)'2': // ping: the server's heartbeat
                _heartbeat?.Change(_heartbeatTimeout, Timeout.InfiniteTimeSpan);
                return PongPacket;
            case (byte)'0' when !_opened:
                OnOpen(frame[1..]);
                return ConnectPacket;
            case (byte)'1':
                End("the upstream closed the Engine.IO session");
                return null;
            case (byte)'3' or (byte)'6': // pong, noop
                return null;
            default:
                throw new SocketIOProtocolException($"unexpected Engine.IO packet type '{(char)frame[0]}'");
        }
    }

    private byte[]? OnBinary(ReadOnlySpan<byte> frame)
    {
        if (_attachmentsExpected == 0)
        {
            throw new SocketIOProtocolException("a binary frame that no packet announced");
        }

        _attachments!.Add(frame.ToArray());
        if (_attachments.Count == _attachmentsExpected)
        {
            var (name, args, attachments) = (_binaryName, _binaryArgs, _attachments);
            (_binaryName, _binaryArgs, _attachments, _attachmentsExpected) = (null, null, null, 0);
            if (name is not null && args is not null)
            {
                BinaryAttachments.Inline(args, attachments);
                _listener.OnEvent(name, EventArguments.Of(args));
            }
        }

        return null;
    }

    private void OnOpen(ReadOnlySpan<byte> handshake)
    {
        int? pingInterval = null, pingTimeout = null;
        try
        {
            var reader = new Utf8JsonReader(handshake);
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
                {
                    if (reader.ValueTextEquals("pingInterval"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number)
                    {
                        pingInterval = reader.GetInt32();
                    }
                    else if (reader.ValueTextEquals("pingTimeout"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number)
                    {
                        pingTimeout = reader.GetInt32();
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new SocketIOProtocolException($"an Engine.IO handshake that is not valid JSON ({e.Message})", e);
        }

        if (pingInterval is not { } interval || pingTimeout is not { } timeout || interval <= 0 || timeout <= 0)
        {
            throw new SocketIOProtocolException("an Engine.IO handshake without pingInterval and pingTimeout");
        }

        _opened = true;
        _heartbeatTimeout = TimeSpan.FromMilliseconds((double)interval + timeout);
        var heartbeat = _options.Time.CreateTimer(static state => ((SocketIOConnection)state!).OnHeartbeatMissed(), this, _heartbeatTimeout, Timeout.InfiniteTimeSpan);
        lock (_gate)
        {
            if (_closeReason is not null)
            {
                heartbeat.Dispose();
                return;
            }

            _heartbeat = heartbeat;
        }
    }

    private void OnHeartbeatMissed() =>
        End($"no ping from the upstream within {_heartbeatTimeout.TotalMilliseconds:0} ms (its pingInterval + pingTimeout)");

    private void OnPacket(ReadOnlySpan<byte> bytes)
    {
        var packet = SocketIOPacket.Parse(bytes);
        if (_attachmentsExpected > 0)
        {
            throw new SocketIOProtocolException("a packet arrived while a binary packet's attachments were still expected");
        }

        switch (packet.Type)
        {
            case SocketIOPacketType.Event when packet.IsMainNamespace && _isConnected:
                var name = SocketIOEventReader.Read(packet.Data, out var args);
                _listener.OnEvent(name, args);
                break;
            case SocketIOPacketType.BinaryEvent or SocketIOPacketType.BinaryAck:
                // An ack's attachments (we never ask for one) and another namespace's are read and dropped.
                var relayed = packet.Type == SocketIOPacketType.BinaryEvent && packet.IsMainNamespace && _isConnected;
                string? binaryName = null;
                object?[]? binaryArgs = null;
                if (relayed)
                {
                    binaryName = SocketIOEventReader.Read(packet.Data, out var read);
                    binaryArgs = read.ToArray(); // its placeholders are replaced in place once the attachments are in
                }

                if (packet.Attachments == 0)
                {
                    if (binaryName is not null)
                    {
                        _listener.OnEvent(binaryName, EventArguments.Of(binaryArgs!));
                    }

                    break;
                }

                (_binaryName, _binaryArgs, _attachments, _attachmentsExpected) = (binaryName, binaryArgs, new List<byte[]>(packet.Attachments), packet.Attachments);
                break;
            case SocketIOPacketType.Connect when packet.IsMainNamespace && !_isConnected:
                SocketId = ReadStringProperty(packet.Data, "sid"u8) ?? throw new SocketIOProtocolException("a CONNECT without the socket's id");
                _isConnected = true;
                _connected.TrySetResult();
                break;
            case SocketIOPacketType.Disconnect when packet.IsMainNamespace:
                End("the upstream disconnected the socket (io server disconnect)");
                break;
            case SocketIOPacketType.ConnectError when packet.IsMainNamespace:
                End($"the upstream refused the socket: {ReadStringProperty(packet.Data, "message"u8) ?? Encoding.UTF8.GetString(packet.Data)}");
                break;
            case SocketIOPacketType.ConnectError:
                CompleteBarrier(packet.Namespace);
                break;
        }
    }

    private void CompleteBarrier(ReadOnlySpan<byte> ns)
    {
        var prefix = BarrierNamespacePrefix.Length;
        if (ns.Length <= prefix || !long.TryParse(ns[prefix..], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            || !Encoding.ASCII.GetString(ns[..prefix]).Equals(BarrierNamespacePrefix, StringComparison.Ordinal))
        {
            return; // another namespace's refusal: nothing of ours waits for it
        }

        lock (_gate)
        {
            if (_barriers is not null && _barriers.Remove(id, out var barrier))
            {
                barrier.TrySetResult();
            }
        }
    }

    private static string? ReadStringProperty(ReadOnlySpan<byte> json, ReadOnlySpan<byte> name)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals(name))
                {
                    return reader.Read() && reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
            }

            return null;
        }
        catch (JsonException e)
        {
            throw new SocketIOProtocolException($"a packet whose data is not valid JSON ({e.Message})", e);
        }
    }

    private async Task SendAsync(byte[] packet, CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken);
        try
        {
            await _socket.SendAsync(packet, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        }
        catch (Exception e) when (e is WebSocketException or ObjectDisposedException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new SocketIOClosedException(Volatile.Read(ref _closeReason) ?? $"sending to the upstream failed: {e.Message}", e);
        }
        finally
        {
            _sending.Release();
        }
    }

    /// <summary>Records why the connection ends (the first reason wins) and stops the socket; the receive loop then finishes.</summary>
    private void End(string reason, bool abort = true)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is null)
        {
            if (abort)
            {
                _socket.Abort(); // wakes the receive loop wherever it reads
            }

            _ending.Cancel(); // or wherever it waits for room
        }
    }

    /// <summary>The receive loop's last act: everything waiting learns the one reason.</summary>
    private void Finish(string reason)
    {
        var final = Interlocked.CompareExchange(ref _closeReason, reason, null) ?? reason;
        ITimer? heartbeat;
        List<TaskCompletionSource>? barriers = null;
        lock (_gate)
        {
            heartbeat = _heartbeat;
            _heartbeat = null;
            if (_barriers is { Count: > 0 })
            {
                barriers = [.. _barriers.Values];
                _barriers.Clear();
            }
        }

        heartbeat?.Dispose();
        var wasConnected = _isConnected;
        _isConnected = false;
        _connected.TrySetException(new SocketIOClosedException(final));
        _ = _connected.Task.Exception; // observed here: a connect that was cancelled first never reads it
        foreach (var barrier in barriers ?? [])
        {
            barrier.TrySetException(new SocketIOClosedException(final));
        }

        if (_socket.State is not (WebSocketState.Closed or WebSocketState.Aborted))
        {
            _socket.Abort();
        }

        if (wasConnected)
        {
            try
            {
                _listener.OnClosed(final);
            }
            finally
            {
                _closed.TrySetResult(final);
            }
        }
        else
        {
            _closed.TrySetResult(final);
        }
    }
}
