using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

internal static class StreamsServiceCollectionExtensions
{
    /// <summary>
    /// Kept streams (README, "Resumable answers"), in this instance's memory; scale-out replaces the
    /// store with Redis's (<c>Scaleout/RedisStreamStore</c>), which keeps this one for its own streams, and
    /// keeps REST streams of connections held by other instances there (<c>Scaleout/RedisRestStreams</c>).
    /// </summary>
    internal static IServiceCollection AddGatewayStreams(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GatewayOptions>, StreamsOptionsValidator>());
        services.AddSingleton<MemoryStreamStore>();
        services.TryAddSingleton<IStreamStore>(sp => sp.GetRequiredService<MemoryStreamStore>());
        services.AddSingleton<PredictionRuns>();
        services.AddSingleton<RestStreams>();
        services.TryAddSingleton<IRemoteRestStreams, NoRemoteRestStreams>(); // scale-out with Redis puts its own in place
        return services;
    }
}
