using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Health;
using TromAi.Gateway.Playground;
using TromAi.Gateway.Proxy;
using TromAi.Gateway.Security;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway;

public static class GatewayApplicationExtensions
{
    /// <summary>Maps the prediction hub and proxies every other request to TROM.AI.</summary>
    public static WebApplication MapTromAiGateway(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value; // validates: a bad setting stops here
        app.UseWebSockets();
        app.UseGatewaySecurity(options);
        app.MapGatewayHealth();
        app.MapPrometheusMetrics()?.AllowAnonymous(); // scrapers hold no gateway credentials; its labels carry no ids

        // MapHub, with the upstream session opened in front of SignalR's handshake.
        // Stateful reconnect: a client whose socket drops briefly gets what it missed, on the same
        // connection and so the same upstream session (this middleware runs once per connection).
        // Negotiate version 1 at least: in version 0 the connection id, which a client shows to
        // others, is also the token that reads the connection's transport and acts as it.
        app.MapConnections(PredictionHub.Path, new() { AllowStatefulReconnects = true, MinimumProtocolVersion = 1 }, connection =>
            {
                connection.Use(next => ActivatorUtilities.CreateInstance<UpstreamConnectionMiddleware>(connection.ApplicationServices, next).OnConnectedAsync);
                connection.UseHub<PredictionHub>();
            })
            .WithMetadata(new HubMetadata(typeof(PredictionHub)));
        app.MapHubPathGuard();

        app.MapPlayground();
        app.MapReverseProxy(proxy =>
        {
            proxy.UseMiddleware<ProxyErrorResponse>();
            proxy.UseMiddleware<SocketIdRewrite>();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });
        return app;
    }

    /// <summary>
    /// http://localhost:8080 when nothing says otherwise. Set here rather than in appsettings.json,
    /// where <c>Urls</c> would outrank <c>ASPNETCORE_URLS</c> and <c>ASPNETCORE_HTTP_PORTS</c>.
    /// </summary>
    private static void UseDefaultUrlUnlessConfigured(WebApplication app)
    {
        var configuration = app.Configuration;
        if (string.IsNullOrEmpty(configuration["urls"]) && string.IsNullOrEmpty(configuration["http_ports"])
            && string.IsNullOrEmpty(configuration["https_ports"]) && !configuration.GetSection("Kestrel:Endpoints").Exists())
        {
            app.Urls.Add("http://localhost:8080");
        }
    }

    /// <summary>
    /// Maps the gateway (<see cref="MapTromAiGateway"/>) and runs it until shutdown. A configuration
    /// error ends start-up with its message, naming the key, instead of a stack trace; exit code 2.
    /// </summary>
    public static async Task<int> RunTromAiGatewayAsync(this WebApplication app)
    {
        try
        {
            app.MapTromAiGateway(); // reads the options, so a bad value surfaces here already
            UseDefaultUrlUnlessConfigured(app);
            await app.RunAsync();
            return 0;
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync("TROM.AI Gateway cannot start: its configuration is invalid.");
            foreach (var failure in e.Failures)
            {
                await Console.Error.WriteLineAsync($"  {failure}");
            }

            return 2;
        }
    }
}
