using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;

namespace TromAi.Gateway.Tests.Infrastructure;

/// <summary>
/// Connects a SignalR <c>HubConnection</c> over a raw <see cref="ClientWebSocket"/> using the
/// skip-negotiation WebSocket transport. Stands in for <c>Microsoft.AspNetCore.SignalR.Client</c>'s
/// HttpConnection, which this machine's package registry does not serve.
/// </summary>
internal sealed class WebSocketConnectionFactory : IConnectionFactory
{
    private static readonly Dictionary<string, string> EmptyPairs = [];

    private readonly IReadOnlyDictionary<string, string>? _query;
    private readonly IReadOnlyDictionary<string, string>? _headers;
    private volatile WebSocketConnection? _lastConnection;

    /// <param name="query">Appended to the hub URL's query string, e.g. <c>access_token</c>.</param>
    /// <param name="headers">Sent with the WebSocket upgrade request.</param>
    public WebSocketConnectionFactory(
        IReadOnlyDictionary<string, string>? query = null,
        IReadOnlyDictionary<string, string>? headers = null)
    {
        _query = query;
        _headers = headers;
    }

    /// <summary>The connection most recently opened by this factory (a HubConnection opens a new one per start or reconnect).</summary>
    public WebSocketConnection? LastConnection => _lastConnection;

    public async ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not UriEndPoint { Uri: { } hubUri })
        {
            throw new NotSupportedException($"{nameof(WebSocketConnectionFactory)} only connects to a {nameof(UriEndPoint)}, not {endpoint.GetType().Name}.");
        }

        var socketUri = ToWebSocketUri(hubUri);
        var socket = new ClientWebSocket();
        // Keeps the upgrade response's status code so a rejected upgrade (401/403/404) is assertable.
        socket.Options.CollectHttpResponseDetails = true;
        foreach (var (name, value) in _headers ?? EmptyPairs)
        {
            socket.Options.SetRequestHeader(name, value);
        }

        try
        {
            await socket.ConnectAsync(socketUri, cancellationToken);
        }
        catch (WebSocketException ex) when (socket.HttpStatusCode is not 0 and not HttpStatusCode.SwitchingProtocols)
        {
            var status = socket.HttpStatusCode;
            socket.Dispose();
            // The URI is logged without its query: it may carry an access token.
            throw new HttpRequestException(
                $"WebSocket upgrade to {socketUri.GetLeftPart(UriPartial.Path)} was rejected with HTTP {(int)status} ({status}).",
                ex,
                status);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new WebSocketConnection(socket);
        _lastConnection = connection;
        return connection;
    }

    private Uri ToWebSocketUri(Uri hubUri)
    {
        var builder = new UriBuilder(hubUri)
        {
            Scheme = hubUri.Scheme switch
            {
                "http" or "ws" => "ws",
                "https" or "wss" => "wss",
                _ => throw new NotSupportedException($"Unsupported hub URL scheme '{hubUri.Scheme}'."),
            },
        };

        var uri = builder.Uri.AbsoluteUri;
        foreach (var (name, value) in _query ?? EmptyPairs)
        {
            uri = QueryHelpers.AddQueryString(uri, name, value);
        }

        return new Uri(uri);
    }
}

/// <summary>
/// A SignalR client connection over a <see cref="ClientWebSocket"/>: two pumps copy socket frames into
/// <see cref="Transport"/>'s input and <see cref="Transport"/>'s output into text frames.
/// </summary>
internal sealed class WebSocketConnection : ConnectionContext
{
    // The official client's close timeout: how long a graceful close handshake may take before the socket is aborted.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);
    private const int MinimumReceiveBufferSize = 4096;

    private readonly ClientWebSocket _socket;
    private readonly Pipe _input;  // socket -> app
    private readonly Pipe _output; // app -> socket
    private readonly CancellationTokenSource _closed = new();
    private readonly Task _receiving;
    private readonly Task _sending;

    private TaskCompletionSource? _resumeReading; // non-null while paused
    private ConnectionAbortedException? _abortReason;
    private int _disposed;

    public WebSocketConnection(ClientWebSocket socket)
    {
        _socket = socket;

        // No synchronization context: xunit installs one, and the pumps must not queue behind test code.
        var options = new PipeOptions(useSynchronizationContext: false);
        _input = new Pipe(options);
        _output = new Pipe(options);
        Transport = new DuplexPipe(_input.Reader, _output.Writer);

        _receiving = Task.Run(ReceiveLoopAsync);
        _sending = Task.Run(SendLoopAsync);
    }

    public override string ConnectionId { get; set; } = Guid.NewGuid().ToString("N");

    public override IFeatureCollection Features { get; } = new FeatureCollection();

    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

    public override IDuplexPipe Transport { get; set; }

    /// <summary>Cancelled when the socket stops delivering data (server close, error, abort or dispose).</summary>
    public override CancellationToken ConnectionClosed => _closed.Token;

    /// <summary>The status the server closed the socket with; null until it sends a close frame.</summary>
    public WebSocketCloseStatus? CloseStatus { get; private set; }

    public string? CloseStatusDescription { get; private set; }

    /// <summary>
    /// Stops reading from the socket, so the server's sends back up through TCP into its own buffers, as with a
    /// client that has stopped reading. A receive already in flight still completes, so at most one more chunk
    /// reaches the app.
    /// </summary>
    public void PauseReading() =>
        Interlocked.CompareExchange(ref _resumeReading, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    public void ResumeReading() => Interlocked.Exchange(ref _resumeReading, null)?.TrySetResult();

    public override void Abort(ConnectionAbortedException abortReason)
    {
        Interlocked.CompareExchange(ref _abortReason, abortReason, null);
        _socket.Abort();
        ResumeReading();
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await CloseAsync();
        }

        await base.DisposeAsync();
    }

    private async Task CloseAsync()
    {
        // The app is done with both pipe ends. Completing its writer lets the send pump flush and start the close
        // handshake; completing its reader lets the receive pump drain the socket up to the server's close frame.
        _output.Writer.Complete();
        _input.Reader.Complete();
        ResumeReading();

        // The pumps never fault: they turn every failure into a pipe completion.
        var pumps = Task.WhenAll(_receiving, _sending);
        try
        {
            await pumps.WaitAsync(CloseTimeout);
        }
        catch (TimeoutException)
        {
            // The server did not finish the close handshake, or stopped reading our sends. Resuming again covers a
            // PauseReading() that raced with this dispose.
            _socket.Abort();
            ResumeReading();
            await pumps;
        }

        _socket.Dispose();
    }

    private async Task ReceiveLoopAsync()
    {
        var writer = _input.Writer;
        Exception? error = null;
        // Once the app stops reading, frames are drained into this scratch buffer until the server's close frame.
        byte[]? discard = null;

        try
        {
            while (true)
            {
                if (Volatile.Read(ref _resumeReading) is { } paused)
                {
                    await paused.Task;
                    continue;
                }

                var memory = discard ?? writer.GetMemory(MinimumReceiveBufferSize);
                var result = await _socket.ReceiveAsync(memory, CancellationToken.None);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    CloseStatus = _socket.CloseStatus;
                    CloseStatusDescription = _socket.CloseStatusDescription;
                    // 1005 (Empty) means a close frame without a status: still a clean close.
                    if (CloseStatus is not (WebSocketCloseStatus.NormalClosure or WebSocketCloseStatus.Empty))
                    {
                        error = new WebSocketClosedException(CloseStatus, CloseStatusDescription);
                    }

                    break;
                }

                if (discard is not null)
                {
                    continue;
                }

                // Flush every chunk: the hub protocol parser copes with partial messages, and the test sees data as it arrives.
                writer.Advance(result.Count);
                var flush = await writer.FlushAsync();
                if (flush.IsCompleted)
                {
                    discard = new byte[MinimumReceiveBufferSize];
                }
            }
        }
        catch (Exception ex)
        {
            error = Volatile.Read(ref _abortReason) ?? ex;
        }
        finally
        {
            await writer.CompleteAsync(error);
            _closed.Cancel();
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        Exception? error = null;

        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                try
                {
                    if (!buffer.IsEmpty)
                    {
                        await SendAsync(buffer);
                    }

                    if (result.IsCompleted || result.IsCanceled)
                    {
                        break;
                    }
                }
                finally
                {
                    reader.AdvanceTo(buffer.End);
                }
            }
        }
        catch (Exception ex)
        {
            error = ex;
        }
        finally
        {
            // The app has finished writing (or the socket failed): start or answer the close handshake. Only this
            // pump ever sends, so the close frame cannot interleave with a data frame.
            if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                try
                {
                    await _socket.CloseOutputAsync(
                        error is null ? WebSocketCloseStatus.NormalClosure : WebSocketCloseStatus.InternalServerError,
                        statusDescription: null,
                        CancellationToken.None);
                }
                catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
                {
                    // Lost a race with the server's close or an abort: nothing left to say.
                }
            }

            await reader.CompleteAsync(error);
        }
    }

    // Data is sent as one WebSocket message per pipe read; the server reassembles the byte stream, so frame and
    // hub-message boundaries need not line up. The JSON protocol is UTF-8, hence text frames.
    private async ValueTask SendAsync(ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsSingleSegment)
        {
            await _socket.SendAsync(buffer.First, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            return;
        }

        var position = buffer.Start;
        buffer.TryGet(ref position, out var segment);
        while (buffer.TryGet(ref position, out var next))
        {
            await _socket.SendAsync(segment, WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
            segment = next;
        }

        await _socket.SendAsync(segment, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}

/// <summary>The server closed the WebSocket with a status other than a normal closure.</summary>
internal sealed class WebSocketClosedException(WebSocketCloseStatus? closeStatus, string? closeStatusDescription)
    : IOException($"The server closed the WebSocket with status {closeStatus?.ToString() ?? "none"} ({(int?)closeStatus}): '{closeStatusDescription}'.")
{
    public WebSocketCloseStatus? CloseStatus { get; } = closeStatus;

    public string? CloseStatusDescription { get; } = closeStatusDescription;
}
