using System.Diagnostics;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Bench.Clients;

/// <summary>
/// The bridged path: the official SignalR .NET client (<c>HubConnectionBuilder().WithUrl(...)</c>, as the README
/// tells users) connected to the gateway's hub, with the hub protocol the run asks for.
/// </summary>
internal sealed class BridgedSession : BenchSession
{
    private readonly HubConnection _connection;
    private string _socketIOClientId = "";

    private BridgedSession(HubConnection connection) => _connection = connection;

    public override string SocketIOClientId => _socketIOClientId;

    public static async Task<BridgedSession> ConnectAsync(Uri hubUrl, BridgedClient client, CancellationToken cancellationToken)
    {
        var builder = new HubConnectionBuilder().WithUrl(hubUrl, options =>
        {
            // By default one WebSocket request, like the direct path (a Socket.IO client on the WebSocket transport
            // skips Engine.IO's polling handshake). With negotiation every session also makes a negotiate POST and
            // keeps that pooled HTTP connection open, on the client and at the gateway, for a minute or two.
            options.SkipNegotiation = !client.Negotiate;
            options.Transports = HttpTransportType.WebSockets;
        });
        if (client.Protocol == BridgedClient.MessagePack)
        {
            builder.AddMessagePackProtocol();
        }

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
