using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>A minimal app on real Kestrel at a free loopback port with the gateway's telemetry, as the gateway composes it, and one plain endpoint.</summary>
internal sealed class TelemetryHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _disposed;

    private TelemetryHost(WebApplication app, Uri baseUrl)
    {
        _app = app;
        Http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(30) };
    }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<TelemetryHost> StartAsync(IDictionary<string, string?>? settings = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
        builder.Logging.ClearProviders();
        builder.Services.AddGatewayTelemetry(builder.Configuration);
        var app = builder.Build();
        app.MapGet("/hello", () => "hi");
        app.MapPrometheusMetrics();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new TelemetryHost(app, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>Stops the host and disposes its container, as the process does at shutdown.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Http.Dispose();
        using (var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await _app.StopAsync(stopping.Token);
        }

        await _app.DisposeAsync();
    }
}
