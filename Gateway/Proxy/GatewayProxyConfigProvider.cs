using Microsoft.Extensions.Options;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// YARP's routes and cluster, built from <see cref="GatewayOptions"/>: every path the gateway does not
/// serve itself goes to TROM.AI. The catch-all has the lowest route precedence, so the hub (and any
/// endpoint the gateway maps) wins over it.
/// </summary>
internal sealed class GatewayProxyConfigProvider : IProxyConfigProvider
{
    public const string ClusterId = "tromai";
    private readonly ProxyConfig _config;

    public GatewayProxyConfigProvider(IOptions<GatewayOptions> options)
    {
        var gateway = options.Value;
        var rewrite = new Dictionary<string, string> { [SocketIdRewrite.MetadataKey] = "true" };
        IReadOnlyList<RouteConfig> routes =
        [
            new RouteConfig { RouteId = "prediction", ClusterId = ClusterId, Metadata = rewrite, Match = new RouteMatch { Path = "/api/v1/prediction/{**id}", Methods = ["POST"] } },
            new RouteConfig { RouteId = "internal-prediction", ClusterId = ClusterId, Metadata = rewrite, Match = new RouteMatch { Path = "/api/v1/internal-prediction/{**id}", Methods = ["POST"] } },
            new RouteConfig { RouteId = "upstream", ClusterId = ClusterId, Match = new RouteMatch { Path = "/{**catch-all}" } },
        ];

        IReadOnlyList<ClusterConfig> clusters =
        [
            new ClusterConfig
            {
                ClusterId = ClusterId,
                Destinations = gateway.Upstream.Replicas.ToDictionary(
                    replica => replica.ToString(), replica => new DestinationConfig { Address = replica.ToString() }),
                HttpRequest = new ForwarderRequestConfig { ActivityTimeout = gateway.Proxy.ActivityTimeout },
                // A replica that fails requests is left out of load balancing for a while.
                HealthCheck = new HealthCheckConfig
                {
                    Passive = new PassiveHealthCheckConfig { Enabled = true, ReactivationPeriod = TimeSpan.FromSeconds(10) },
                },
            },
        ];

        _config = new ProxyConfig(routes, clusters);
    }

    public IProxyConfig GetConfig() => _config;

    private sealed class ProxyConfig(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        // Built once from options validated at start-up; it never changes while the process runs.
        public IChangeToken ChangeToken { get; } = NullChangeToken.Singleton;
    }
}
