using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Upstream;

internal sealed class UpstreamSessionFactory(IOptions<GatewayOptions> options, UpstreamDestinations destinations, WarmUpstreamSockets warm, TimeProvider time, GatewayMetrics metrics, ILoggerFactory loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger<UpstreamSession>();

    public UpstreamSession Create(IUpstreamListener listener) => new(options.Value.Upstream, destinations, listener, time, metrics, _logger, warm);
}
