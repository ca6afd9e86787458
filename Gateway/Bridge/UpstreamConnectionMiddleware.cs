using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Connections.Features;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Runs in front of the hub, before SignalR's handshake: the connection's upstream session is opened
/// first, so a client's <c>start()</c> completes only once tokens can reach it. SignalR itself would
/// answer the handshake before the hub's <c>OnConnectedAsync</c> runs. The session lives exactly as
/// long as the connection.
/// </summary>
internal sealed partial class UpstreamConnectionMiddleware(
    ConnectionDelegate next,
    UpstreamSessionFactory sessions,
    StreamingModeResolver modes,
    UpstreamHeaderPolicy headers,
    ISessionDirectory directory,
    GatewayMetrics metrics,
    GatewayDrain drain,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<UpstreamConnectionMiddleware> logger)
{
    private const byte RecordSeparator = 0x1e;

    public async Task OnConnectedAsync(ConnectionContext connection)
    {
        if (drain.IsDraining)
        {
            metrics.Rejected(GatewayMetrics.RejectReason.Draining);
            await RejectHandshakeAsync(connection, "this instance is shutting down; connect again to reach another one.");
            return;
        }

        using var scope = logger.BeginConnectionScope(connection.ConnectionId);
        WatchIdleness(connection, options.Value.Relay.IdleTimeout);
        var relay = new ConnectionRelay(connection, options.Value.Relay, time, metrics, logger);
        UpstreamSession? session = null;
        try
        {
            // In SSE mode each prediction is its own stream: there is no session to open. When auto's probe could
            // not tell, the Socket.IO connect is the question: its answer decides.
            var mode = await modes.TryGetAsync(connection.ConnectionClosed);
            if (mode is null or StreamingMode.SocketIO)
            {
                session = sessions.Create(relay);
                try
                {
                    await session.ConnectAsync(warm: mode == StreamingMode.SocketIO, connection.ConnectionClosed);
                    if (mode is null)
                    {
                        modes.Learn(StreamingMode.SocketIO, "its Socket.IO endpoint accepted a session");
                    }
                }
                catch (UpstreamUnavailableException e) when (mode is null && StreamingModeMismatch.NoSocketIOStatus(e) is { } status)
                {
                    await DisposeAsync(session);
                    session = null;
                    modes.Learn(StreamingMode.Sse, $"its Socket.IO endpoint answered a WebSocket upgrade with HTTP {(int)status}, not 101");
                }
            }
        }
        catch (UpstreamUnavailableException e)
        {
            Log.UpstreamUnavailable(logger, connection.ConnectionId, e.Message);
            metrics.Rejected(e.InnerException is OperationCanceledException ? GatewayMetrics.RejectReason.UpstreamTimeout : GatewayMetrics.RejectReason.UpstreamUnavailable);
            await DisposeAsync(session);
            await RejectHandshakeAsync(connection, e.Message);
            return;
        }
        catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
        {
            await DisposeAsync(session);
            return; // the client left while we connected for it
        }

        var request = connection.Features.Get<IHttpContextFeature>()?.HttpContext?.Request;
        var caller = request is null ? UpstreamCaller.Gateway : headers.CallerOfConnection(request, browserTransport: true);
        var bridged = new BridgedConnection(connection.ConnectionId, ConnectionOwner.Of(request?.HttpContext.User), caller, session, relay, connection.ConnectionClosed);
        connection.Features.Set(bridged);
        await directory.AddAsync(bridged); // findable by every instance before start() completes
        metrics.SessionStarted();
        try
        {
            await next(connection);
        }
        finally
        {
            metrics.SessionEnded();
            await directory.RemoveAsync(bridged);
            var released = bridged.ReleaseConnectionAsync();
            if (released.IsCompleted)
            {
                await DisposeAsync(session);
                await relay.StopAsync();
                relay.Dispose();
            }
            else
            {
                // A prediction of the connection runs on for its stream (the client went away without
                // cancelling): the session and the relay reading it live until it is over.
                Log.KeptOpen(logger, connection.ConnectionId);
                _ = CloseOnceReleasedAsync(released, session, relay);
            }
        }
    }

    private static async Task CloseOnceReleasedAsync(Task released, UpstreamSession? session, ConnectionRelay relay)
    {
        await released;
        await DisposeAsync(session);
        await relay.StopAsync();
        relay.Dispose();
    }

    private static ValueTask DisposeAsync(UpstreamSession? session) => session?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>
    /// Closes the connection once the client has sent nothing for <paramref name="timeout"/>, which
    /// frees its upstream session. SignalR's own ClientTimeoutInterval starts only with the client's
    /// first ping (for clients that never ping), and the session is opened before the handshake: a
    /// client that completes the handshake and then falls silent would hold it forever. Transports
    /// whose liveness is their own (long polling: a client that stops polling is dropped by SignalR)
    /// and whose clients therefore do not ping are left to it.
    /// </summary>
    private void WatchIdleness(ConnectionContext connection, TimeSpan timeout)
    {
        if (connection.Features.Get<IConnectionInherentKeepAliveFeature>()?.HasInherentKeepAlive == true
            || connection.Features.Get<IConnectionHeartbeatFeature>() is not { } heartbeat)
        {
            return;
        }

        var activity = new ClientActivity(connection.Transport.Input, time);
        connection.Transport = new DuplexPipe(activity, connection.Transport.Output);
        var closed = 0;
        heartbeat.OnHeartbeat(_ =>
        {
            // Once a second, on SignalR's heartbeat.
            if (activity.Idle > timeout && Interlocked.Exchange(ref closed, 1) == 0)
            {
                // Closed as a server shutdown closes: a client whose pings were lost on the way may reconnect.
                Log.Idle(logger, connection.ConnectionId, timeout);
                if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
                {
                    lifetime.RequestClose();
                }
                else
                {
                    connection.Abort(new ConnectionAbortedException($"The client sent nothing for {timeout} (Gateway:Relay:IdleTimeout)."));
                }
            }
        }, activity);
    }

    /// <summary>
    /// Answers the client's handshake with an error, which every SignalR client reports as the
    /// failure of <c>start()</c> ("Server returned handshake error: ..."). The handshake is JSON
    /// whatever hub protocol the client asked for.
    /// </summary>
    private static async Task RejectHandshakeAsync(ConnectionContext connection, string error)
    {
        var response = JsonSerializer.SerializeToUtf8Bytes(new { error = $"TROM.AI Gateway: {error}" });
        var output = connection.Transport.Output;
        output.Write(response);
        output.Write([RecordSeparator]);
        await output.FlushAsync();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    private static partial class Log
    {
        [LoggerMessage(3040, LogLevel.Warning, "Refusing connection {ConnectionId}: {Reason}", EventName = "HubConnectionRefused")]
        public static partial void UpstreamUnavailable(ILogger logger, string connectionId, string reason);

        [LoggerMessage(3041, LogLevel.Information, "Closing connection {ConnectionId}: the client sent nothing for {Timeout}.", EventName = "HubConnectionIdle")]
        public static partial void Idle(ILogger logger, string connectionId, TimeSpan timeout);

        [LoggerMessage(5002, LogLevel.Debug, "Connection {ConnectionId} ended while a prediction of it runs; its upstream session stays open until that is over.", EventName = "StreamSessionKeptOpen")]
        public static partial void KeptOpen(ILogger logger, string connectionId);
    }
}
