using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Upstream;

internal sealed class UpstreamSessionFactory(IOptions<GatewayOptions> options, UpstreamDestinations destinations, TimeProvider time, ILoggerFactory loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger<UpstreamSession>();

    public UpstreamSession Create(IUpstreamListener listener) => new(options.Value.Upstream, destinations, listener, time, _logger);
}
