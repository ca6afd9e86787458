using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// Opens the upstream WebSocket on a socket of its own: TCP (and TLS for <c>wss</c>), the RFC 6455 upgrade
/// request, the 101 answer checked, then the BCL's <see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/>
/// over the stream. Framing, masking, close and ping handling stay the BCL's.
/// </summary>
/// <remarks>
/// <para>Why not <see cref="ClientWebSocket"/>: its upgrade runs through <c>SocketsHttpHandler</c>, and the
/// <c>HttpConnection</c> under the WebSocket keeps a 4 KB read buffer, its own pool, request and header objects
/// and a keep-alive timer for the connection's life. Without them an idle upstream session holds 3.6 KB instead
/// of 13.7, and the gateway 42 KB RSS per idle bridged session at ~10k instead of 55 (Gateway.Bench/RESULTS.md,
/// "2026-12-02, 10:30–12:08"); an event's read costs the same.</para>
/// <para>No HTTP proxy is used, as YARP's client uses none for the REST calls to the same TROM.AI; no WebSocket
/// keep-alive pings, because Engine.IO has its own heartbeat, which the connection watches.</para>
/// </remarks>
internal static class WebSocketHandshake
{
    private const int MaxResponseHeadBytes = 16 * 1024;
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>Connects to <paramref name="endpoint"/> (<c>ws</c> or <c>wss</c>) and completes the upgrade.</summary>
    /// <exception cref="SocketIOClosedException">The server could not be reached, or answered anything but a valid 101.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<WebSocket> ConnectAsync(Uri endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(endpoint.IdnHost, endpoint.Port), cancellationToken);
            stream = new NetworkStream(socket, ownsSocket: true);
            if (endpoint.Scheme == "wss")
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = tls;
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = endpoint.IdnHost }, cancellationToken);
            }

            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            await stream.WriteAsync(Request(endpoint, key), cancellationToken);
            var leftover = await ReadAnswerAsync(stream, endpoint, key, cancellationToken);
            if (leftover.Length > 0)
            {
                // The server's first frame came in the same read as its answer.
                stream = new PrefixedStream(leftover, stream);
            }

            return WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        }
        catch (Exception e)
        {
            if (stream is not null)
            {
                await stream.DisposeAsync(); // and the socket it owns
            }

            socket.Dispose();
            if (e is SocketIOClosedException || (e is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                throw;
            }

            throw new SocketIOClosedException($"the WebSocket to {endpoint} did not open: {e.Message}", e);
        }
    }

    private static byte[] Request(Uri endpoint, string key) => Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture,
        $"GET {endpoint.PathAndQuery} HTTP/1.1\r\nHost: {endpoint.GetComponents(UriComponents.Host | UriComponents.Port, UriFormat.UriEscaped)}\r\n" +
        $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));

    /// <summary>Reads the answer's head, checks it, and returns what followed it in the same reads.</summary>
    private static async Task<byte[]> ReadAnswerAsync(Stream stream, Uri endpoint, string key, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            var count = 0;
            int end;
            while ((end = buffer.AsSpan(0, count).IndexOf(HeadEnd)) < 0)
            {
                if (count == MaxResponseHeadBytes)
                {
                    throw Refused(endpoint, $"its answer's head is longer than {MaxResponseHeadBytes} bytes", null);
                }

                if (count == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, MaxResponseHeadBytes));
                    buffer.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await stream.ReadAsync(buffer.AsMemory(count, Math.Min(buffer.Length, MaxResponseHeadBytes) - count), cancellationToken);
                if (read == 0)
                {
                    throw Refused(endpoint, "the server closed the connection before answering", null);
                }

                count += read;
            }

            Check(Encoding.Latin1.GetString(buffer, 0, end), endpoint, key);
            return buffer.AsSpan(end + HeadEnd.Length, count - end - HeadEnd.Length).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>RFC 6455, 4.1: a 101 that switches to websocket and proves it read this request's key; no extension or subprotocol was asked for.</summary>
    private static void Check(string head, Uri endpoint, string key)
    {
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(status[1], NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            throw Refused(endpoint, "its answer is not HTTP/1.1", null);
        }

        if (code != 101)
        {
            throw Refused(endpoint, $"the server answered HTTP {code}", (HttpStatusCode)code);
        }

        string? upgrade = null, connection = null, accept = null, extensions = null, protocol = null;
        foreach (var line in lines.AsSpan(1))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                throw Refused(endpoint, "its answer has a malformed header line", null);
            }

            var value = line[(colon + 1)..].Trim();
            switch (line[..colon].Trim().ToLowerInvariant())
            {
                case "upgrade": upgrade = value; break;
                case "connection": connection = connection is null ? value : connection + "," + value; break;
                case "sec-websocket-accept": accept = value; break;
                case "sec-websocket-extensions": extensions = value; break;
                case "sec-websocket-protocol": protocol = value; break;
            }
        }

        if (!string.Equals(upgrade, "websocket", StringComparison.OrdinalIgnoreCase)
            || connection is null
            || !connection.Split(',').Any(token => token.Trim().Equals("upgrade", StringComparison.OrdinalIgnoreCase)))
        {
            throw Refused(endpoint, "its 101 answer does not switch to websocket", null);
        }

        if (accept != AcceptFor(key))
        {
            throw Refused(endpoint, "its Sec-WebSocket-Accept does not match the request's key", null);
        }

        if (!string.IsNullOrEmpty(extensions) || !string.IsNullOrEmpty(protocol))
        {
            throw Refused(endpoint, "it chose an extension or subprotocol that was not asked for", null);
        }
    }

    // SHA-1 is what RFC 6455 prescribes for this proof of reading the key; it protects nothing.
#pragma warning disable CA5350
    internal static string AcceptFor(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
#pragma warning restore CA5350

    private static SocketIOClosedException Refused(Uri endpoint, string why, HttpStatusCode? status) =>
        new($"the WebSocket to {endpoint} did not open: {why}") { UpgradeStatus = status };

    /// <summary>The stream under the WebSocket when the server's first bytes arrived with its answer: those first, then the socket.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : Stream
    {
        private byte[]? _prefix = prefix;
        private int _offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            _prefix is null ? inner.ReadAsync(buffer, cancellationToken) : ValueTask.FromResult(TakePrefix(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) =>
            _prefix is null ? inner.Read(buffer, offset, count) : TakePrefix(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync();
            await base.DisposeAsync();
        }

        // A zero-byte read gets 0 while bytes remain: there is data to read, as on a socket.
        private int TakePrefix(Span<byte> destination)
        {
            var prefix = _prefix!;
            var count = Math.Min(destination.Length, prefix.Length - _offset);
            prefix.AsSpan(_offset, count).CopyTo(destination);
            _offset += count;
            if (_offset == prefix.Length)
            {
                _prefix = null;
            }

            return count;
        }
    }
}
