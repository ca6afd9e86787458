using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace TromAi.Gateway.Scaleout;

internal static class ScaleoutServiceCollectionExtensions
{
    /// <summary>
    /// Makes every hub's <see cref="HubLifetimeManager{THub}"/> the Redis backplane, on the instance's shared
    /// <see cref="RedisConnection"/> (configured by <c>Gateway:Redis</c>). Works before or after <c>AddSignalR()</c>.
    /// </summary>
    internal static IServiceCollection AddRedisBackplane(this IServiceCollection services)
    {
        services.TryAddSingleton<RedisConnection>();
        services.TryAddSingleton(TimeProvider.System);

        // AddSignalR only TryAdds the default manager: removing it covers both orders of the calls.
        services.RemoveAll(typeof(HubLifetimeManager<>));
        services.AddSingleton(typeof(HubLifetimeManager<>), typeof(RedisHubLifetimeManager<>));
        return services;
    }
}
