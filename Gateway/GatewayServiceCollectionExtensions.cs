using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Health;
using TromAi.Gateway.Proxy;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Security;
using TromAi.Gateway.Telemetry;
using TromAi.Gateway.Upstream;
using Yarp.ReverseProxy.Configuration;

namespace TromAi.Gateway;

public static class GatewayServiceCollectionExtensions
{
    /// <summary>Adds the gateway: options from the <c>Gateway</c> section, the prediction hub, its upstream sessions and the proxy.</summary>
    public static IServiceCollection AddTromAiGateway(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(GatewayOptions.SectionName);
        services.AddOptions<GatewayOptions>()
            .Configure(options => Bind(section, options))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);

        // Only what decides which services exist (Redis on or off, authentication on or off, JWT or not)
        // is read now; every value the services use comes from the options proper, bound and validated
        // at start-up, where a bad value stops the gateway.
        var snapshot = Snapshot(section);

        services.AddSignalR().AddGatewayMessagePackProtocol();
        ReplaceJsonHubProtocol(services);
        services.AddOptions<HubOptions>().Configure<IOptions<GatewayOptions>>((hub, gateway) =>
        {
            // Predict requests carry the prediction body (history, uploads): more than SignalR's 32 KB default.
            hub.MaximumReceiveMessageSize = gateway.Value.Limits.MaxHubMessageBytes;
            hub.StatefulReconnectBufferSize = gateway.Value.Relay.StatefulReconnectBufferBytes;
        });
        services.AddSingleton<PredictionStreams>();
        services.AddSingleton<StreamingModeResolver>();
        services.AddSingleton<SsePredictions>();
        services.AddSingleton<SsePredictionRelay>();
        services.AddSingleton<KeptRestForwarding>();
        services.AddGatewayStreams(); // before scale-out, which puts Redis's store in its place
        services.AddSingleton<BodyBudget>();
        services.AddSingleton<UpstreamHeaderPolicy>();
        services.AddTransient<ActivityTimeoutHandler>();
        services.AddHttpClient(UpstreamHttp.ClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .AddHttpMessageHandler<ActivityTimeoutHandler>();
        services.AddSingleton<UpstreamDestinations>();
        services.AddSingleton<WarmUpstreamSockets>();
        services.AddSingleton<UpstreamSessionFactory>();
        var redis = snapshot.Redis.Enabled;
        services.AddGatewayHealth(redis);
        services.AddGatewaySecurity(snapshot);
        services.AddGatewayTelemetry(configuration);

        // The host must outwait the drain: its default 30 s would cut a longer Gateway:Drain:Timeout short.
        // (Read now: the host takes its options while it is being built, before validation could report a bad value.)
        services.Configure<HostOptions>(host => host.ShutdownTimeout = snapshot.Drain.Timeout + TimeSpan.FromSeconds(15));
        services.AddGatewayScaleout(redis);
        services.AddReverseProxy().AddGatewayTransforms();
        services.AddSingleton<IProxyConfigProvider, GatewayProxyConfigProvider>();
        return services;
    }

    /// <summary>The hub's JSON protocol skips message types it does not know (<see cref="ForwardCompatibleJsonHubProtocol"/>).</summary>
    private static void ReplaceJsonHubProtocol(IServiceCollection services)
    {
        var json = services.FirstOrDefault(descriptor => descriptor.ServiceType == typeof(Microsoft.AspNetCore.SignalR.Protocol.IHubProtocol)
            && descriptor.ImplementationType == typeof(Microsoft.AspNetCore.SignalR.Protocol.JsonHubProtocol));
        if (json is not null)
        {
            services.Remove(json);
        }

        services.AddSingleton<Microsoft.AspNetCore.SignalR.Protocol.IHubProtocol, ForwardCompatibleJsonHubProtocol>();
    }

    private static GatewayOptions Snapshot(IConfigurationSection section)
    {
        var snapshot = new GatewayOptions();
        try
        {
            section.Bind(snapshot);
        }
        catch (InvalidOperationException)
        {
            // Reported, with its key, by the validation at start-up.
        }

        return snapshot;
    }

    /// <summary>
    /// Drains on SIGTERM before the host stops (see README, "Graceful drain"). For the process's own
    /// host only: it takes over the process's termination signals.
    /// </summary>
    public static IServiceCollection AddTromAiGracefulShutdown(this IServiceCollection services) =>
        services.AddSingleton<IHostLifetime, DrainingLifetime>();

    /// <summary>
    /// Binds the section, turning a value that does not parse (a TimeSpan of "ten seconds") into a
    /// validation failure that names its key, like every other configuration error at start-up.
    /// </summary>
    private static void Bind(IConfigurationSection section, GatewayOptions options)
    {
        try
        {
            section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = false);
        }
        catch (InvalidOperationException e)
        {
            throw new OptionsValidationException(GatewayOptions.SectionName, typeof(GatewayOptions), [e.Message]);
        }
    }
}
