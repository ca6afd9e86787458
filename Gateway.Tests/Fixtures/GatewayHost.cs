using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>A gateway on real Kestrel at a free loopback port, composed exactly as Program.cs composes it.</summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GatewayHost(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
        Http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseUrl { get; }

    public Uri HubUrl => new(BaseUrl, "hubs/prediction");

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    /// <param name="services">Services registered before the gateway's, which take their place (a fake <see cref="TimeProvider"/>, say).</param>
    public static async Task<GatewayHost> StartAsync(Uri upstream, IDictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var app = Build(upstream, settings, services);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new GatewayHost(app, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>The app as Program.cs builds it, with test settings layered over appsettings.json.</summary>
    public static WebApplication Build(Uri upstream, IDictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Logging:LogLevel:Default"] = "Warning",
            // Every test client comes from 127.0.0.1: per-address limits are tested on their own.
            ["Gateway:Limits:ConnectsPerIpPerSecond"] = "100000",
            ["Gateway:Limits:RequestsPerIpPerSecond"] = "100000",
            ["Gateway:Upstream:BaseUrl"] = upstream.ToString(),
            ["Gateway:Upstream:ConnectTimeout"] = "00:00:05",
            ["Gateway:Upstream:ReconnectInitialDelay"] = "00:00:00.100",
            ["Gateway:Upstream:ReconnectMaxDelay"] = "00:00:01",
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        services?.Invoke(builder.Services);
        builder.Services.AddTromAiGateway(builder.Configuration);
        var app = builder.Build();
        app.MapTromAiGateway();
        return app;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        using (var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await _app.StopAsync(stopping.Token);
        }

        await _app.DisposeAsync();
    }
}
