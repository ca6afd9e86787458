using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Bench.Clients;

/// <summary>
/// The bridged path: a SignalR <see cref="HubConnection"/> to the gateway's hub over the tests' WebSocket
/// transport, with the plain JSON hub protocol (the tests' any-arity wrapper would re-scan every message and
/// charge its cost to the bridged path).
/// </summary>
internal sealed class BridgedSession : BenchSession
{
    private static readonly WebSocketConnectionFactory Transport = new();

    private readonly HubConnection _connection;
    private string _socketIOClientId = "";

    private BridgedSession(HubConnection connection) => _connection = connection;

    public override string SocketIOClientId => _socketIOClientId;

    public static async Task<BridgedSession> ConnectAsync(Uri hubUrl, CancellationToken cancellationToken)
    {
        var builder = new HubConnectionBuilder();
        builder.Services.AddSingleton<IConnectionFactory>(Transport);
        builder.Services.AddSingleton<EndPoint>(new UriEndPoint(hubUrl));
        builder.AddJsonProtocol();
        builder.ConfigureLogging(logging => logging.ClearProviders());
        var connection = builder.Build();

        var session = new BridgedSession(connection);
        connection.On<string>("start", _ => session.OnStart());
        connection.On<string>("token", session.OnToken);
        connection.On("end", session.OnEnd);
        connection.Closed += error =>
        {
            session.OnClosed(error?.Message ?? "closed");
            return Task.CompletedTask;
        };

        try
        {
            // The gateway answers the handshake only once the upstream session is connected: start() is "ready".
            var begun = Stopwatch.GetTimestamp();
            await connection.StartAsync(cancellationToken);
            session.ConnectTime = Stopwatch.GetElapsedTime(begun);
            session._socketIOClientId = await connection.InvokeAsync<string>(nameof(PredictionHub.GetSocketIOClientId), cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return session;
    }

    public override ValueTask DisposeAsync() => _connection.DisposeAsync();
}
