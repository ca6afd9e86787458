using SocketIOClient.Transport;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway;

/// <summary>The <c>Gateway</c> configuration section. Every value has a default that runs the gateway alone in front of a local TROM.AI.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    public UpstreamOptions Upstream { get; set; } = new();

    public RelayOptions Relay { get; set; } = new();

    public ProxyOptions Proxy { get; set; } = new();

    public RedisOptions Redis { get; set; } = new();
}

public sealed class UpstreamOptions
{
    /// <summary>Where TROM.AI listens: its REST API, web UI and Socket.IO endpoint.</summary>
    public Uri BaseUrl { get; set; } = new("http://localhost:3000");

    /// <summary>
    /// Several TROM.AI replicas, instead of <see cref="BaseUrl"/>. Each session opens on the least
    /// loaded one and its predictions go to that replica; other requests are load-balanced.
    /// </summary>
    public List<Uri> Destinations { get; set; } = [];

    /// <summary>The replicas in use: <see cref="Destinations"/>, or <see cref="BaseUrl"/> alone.</summary>
    public IReadOnlyList<Uri> Replicas => Destinations.Count > 0 ? Destinations : [BaseUrl];

    /// <summary>How long a new hub connection may wait for its upstream Socket.IO session before its start fails.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How TROM.AI streams: <c>SocketIO</c> (1.x to 2.2.4), <c>Sse</c> (2.1 and later), or <c>Auto</c>:
    /// ask it once, at the first connection (see README).
    /// </summary>
    public StreamingMode Streaming { get; set; } = StreamingMode.SocketIO;

    /// <summary>Socket.IO transport to the upstream. WebSocket unless a proxy in between only allows polling.</summary>
    public TransportProtocol Transport { get; set; } = TransportProtocol.WebSocket;

    /// <summary>First reconnect delay after the upstream socket drops; it doubles per attempt, with jitter, up to <see cref="ReconnectMaxDelay"/>.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class RedisOptions
{
    /// <summary>
    /// A StackExchange.Redis configuration string (<c>redis:6379,password=...</c>). Empty: the instance
    /// runs alone on in-memory state. Set: instances share a session directory and a SignalR backplane.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>Prefix of every key and channel, so several gateways can share one Redis.</summary>
    public string KeyPrefix { get; set; } = "tromai-gateway";

    /// <summary>How long a session's directory entry outlives its owner; the owner refreshes it well before.</summary>
    public TimeSpan SessionTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest wait for one Redis call in a request path; past it the call counts as failed.</summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(2);

    public bool Enabled => !string.IsNullOrWhiteSpace(Configuration);
}

public sealed class RelayOptions
{
    /// <summary>Events that may wait for one slow client before its connection is closed. Bounds the memory a client that stops reading can hold.</summary>
    public int MaxBacklog { get; set; } = 20_000;
}

public sealed class ProxyOptions
{
    /// <summary>Largest prediction body (JSON or multipart) the gateway buffers to rewrite <c>socketIOClientId</c>; larger ones get 413.</summary>
    public long MaxPredictionBodyBytes { get; set; } = 50 * 1024 * 1024;

    /// <summary>How long a proxied request may go without a byte either way. A prediction POST blocks until the whole flow has run.</summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromMinutes(10);
}
