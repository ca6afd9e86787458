using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TromAi.Gateway.Bridge;
using BackplaneOptions = Microsoft.AspNetCore.SignalR.StackExchangeRedis.RedisOptions;

namespace TromAi.Gateway.Scaleout;

internal static class ScaleoutServiceCollectionExtensions
{
    /// <summary>
    /// The session directory, on Redis's <c>IDistributedCache</c> with <paramref name="redis"/> and
    /// the in-memory one without; with Redis, also ASP.NET Core's Redis backplane for every hub. Both
    /// share the instance's one <see cref="RedisConnection"/> (<c>Gateway:Redis</c>).
    /// </summary>
    internal static IServiceCollection AddGatewayScaleout(this IServiceCollection services, bool redis)
    {
        services.TryAddSingleton(TimeProvider.System);
        if (redis)
        {
            services.AddSingleton<RedisConnection>();

            // The backplane connects once, for good: handing it the multiplexer only once it is
            // connected keeps a Redis that is down at start from leaving it without its subscriptions.
            services.AddSignalR().AddStackExchangeRedis(_ => { });
            services.AddOptions<BackplaneOptions>().Configure<RedisConnection>((backplane, connection) =>
                backplane.ConnectionFactory = async _ => await connection.WhenFirstConnectedAsync());
            services.RemoveAll(typeof(HubLifetimeManager<>));
            services.AddSingleton(typeof(HubLifetimeManager<>), typeof(RedisBackplane<>));

            // Kept streams in Redis, so that any instance can resume them (this instance's own stay in memory too).
            services.AddSingleton<RedisStreamStore>();
            services.AddSingleton<IStreamStore>(sp => sp.GetRequiredService<RedisStreamStore>());

            services.AddStackExchangeRedisCache(_ => { });
            services.AddOptions<RedisCacheOptions>().Configure<RedisConnection>((cache, connection) =>
                cache.ConnectionMultiplexerFactory = connection.GetMultiplexerAsync);
        }
        else
        {
            services.AddDistributedMemoryCache();
            services.RemoveAll(typeof(HubLifetimeManager<>));
            services.AddSingleton(typeof(HubLifetimeManager<>), typeof(LocalHubLifetimeManager<>));
        }

        services.AddSingleton<SessionDirectory>();
        services.AddSingleton<ISessionDirectory>(sp => sp.GetRequiredService<SessionDirectory>());
        services.AddHostedService(sp => sp.GetRequiredService<SessionDirectory>());
        if (redis)
        {
            // A REST prediction forwarded here for another instance's connection is kept there, where its events arrive.
            services.AddSingleton<RedisRestStreams>();
            services.AddSingleton<IRemoteRestStreams>(sp => sp.GetRequiredService<RedisRestStreams>());
            services.AddHostedService(sp => sp.GetRequiredService<RedisRestStreams>());
        }

        return services;
    }
}
