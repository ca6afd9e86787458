using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Proxy;
using TromAi.Gateway.Scaleout;
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

        // Predict requests carry the prediction body (history, uploads): more than SignalR's 32 KB default.
        services.AddSignalR(hub => hub.MaximumReceiveMessageSize = 1024 * 1024);
        services.AddSingleton<PredictionStreams>();
        services.AddSingleton<StreamingModeResolver>();
        services.AddSingleton<SsePredictions>();
        services.AddSingleton<SsePredictionRelay>();
        services.AddHttpClient(UpstreamHttp.ClientName, (sp, client) =>
            client.Timeout = sp.GetRequiredService<IOptions<GatewayOptions>>().Value.Proxy.ActivityTimeout);
        services.AddSingleton<UpstreamDestinations>();
        services.AddSingleton<UpstreamSessionFactory>();
        if (new RedisOptions { Configuration = section["Redis:Configuration"] }.Enabled)
        {
            services.AddSingleton<RedisConnection>();
            services.AddSingleton<RedisSessionDirectory>();
            services.AddSingleton<ISessionDirectory>(sp => sp.GetRequiredService<RedisSessionDirectory>());
            services.AddHostedService(sp => sp.GetRequiredService<RedisSessionDirectory>());
        }
        else
        {
            services.AddSingleton<ISessionDirectory, MemorySessionDirectory>();
        }

        services.AddReverseProxy();
        services.AddSingleton<IProxyConfigProvider, GatewayProxyConfigProvider>();
        return services;
    }

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
