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

    public PlaygroundOptions Playground { get; set; } = new();

    public DrainOptions Drain { get; set; } = new();

    public AuthOptions Auth { get; set; } = new();

    public CorsOptions Cors { get; set; } = new();

    public LimitsOptions Limits { get; set; } = new();

    public ProxyTrustOptions ForwardedHeaders { get; set; } = new();

    public Telemetry.TelemetryOptions Telemetry { get; set; } = new();

    public Bridge.StreamsOptions Streams { get; set; } = new();
}

/// <summary>Gateway authentication for the hub and REST. Off unless API keys or a JWT signer are configured.</summary>
public sealed class AuthOptions
{
    /// <summary>Accepted API keys: in <c>X-Api-Key</c>, <c>Authorization: Bearer</c>, or the <c>access_token</c> query of a WebSocket.</summary>
    public List<string> ApiKeys { get; set; } = [];

    public JwtOptions Jwt { get; set; } = new();

    public bool Enabled => ApiKeys.Count > 0 || Jwt.Enabled;
}

public sealed class JwtOptions
{
    /// <summary>An OpenID Connect authority whose keys sign the tokens (e.g. https://login.example/realm).</summary>
    public string? Authority { get; set; }

    /// <summary>Or a shared HMAC key (at least 32 bytes), for setups without an identity provider.</summary>
    public string? SigningKey { get; set; }

    public string? Issuer { get; set; }

    public string? Audience { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority) || !string.IsNullOrWhiteSpace(SigningKey);
}

/// <summary>Origins other than the gateway's own that may call it from a browser. Empty: same origin only.</summary>
public sealed class CorsOptions
{
    public List<string> AllowedOrigins { get; set; } = [];
}

/// <summary>Limits that keep one client from taking the instance; each rejection has a clear status and a metric.</summary>
public sealed class LimitsOptions
{
    /// <summary>Hub connections this instance holds at most; past it, 503 (another instance may have room).</summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>Hub connections one client IP holds at most; past it, 429.</summary>
    public int MaxConnectionsPerIp { get; set; } = 1_000;

    /// <summary>New hub connections one client IP may open per second; past it, 429.</summary>
    public int ConnectsPerIpPerSecond { get; set; } = 100;

    /// <summary>REST requests one client IP may make per second; past it, 429.</summary>
    public int RequestsPerIpPerSecond { get; set; } = 1_000;

    /// <summary>Largest hub message (a <c>Predict</c> request) in bytes; a larger one closes the connection with an error.</summary>
    public long MaxHubMessageBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest request body for proxied requests other than predictions (which have <c>Gateway:Proxy:MaxPredictionBodyBytes</c>); past it, 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 100 * 1024 * 1024;
}

/// <summary>
/// Who may tell the gateway a client's address and scheme (<c>X-Forwarded-For</c>, <c>X-Forwarded-Proto</c>)
/// once forwarded headers are on (<c>ASPNETCORE_FORWARDEDHEADERS_ENABLED=true</c>).
/// </summary>
public sealed class ProxyTrustOptions
{
    /// <summary>
    /// Addresses (<c>10.1.2.3</c>) or CIDR networks (<c>10.0.0.0/8</c>) of the proxies in front of the
    /// gateway. Empty: loopback only (ASP.NET Core's default); from anyone else the headers are ignored.
    /// </summary>
    public List<string> TrustedProxies { get; set; } = [];
}

public sealed class DrainOptions
{
    /// <summary>
    /// On SIGTERM, how long running predictions may take to finish before the remaining connections
    /// are told <c>gateway:draining</c> and closed. Keep it below the orchestrator's grace period.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
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
    /// How TROM.AI streams: <c>Auto</c> (the default: ask it once, at the first connection, and log the answer),
    /// <c>SocketIO</c> (1.x to 2.2.4) or <c>Sse</c> (2.1 and later) (see README).
    /// </summary>
    public StreamingMode Streaming { get; set; } = StreamingMode.Auto;

    /// <summary>
    /// TROM.AI's API key, sent as <c>Authorization: Bearer</c> on every request the gateway makes or
    /// forwards, when gateway authentication is on (the client's own Authorization is the gateway's then).
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>Socket.IO transport to the upstream. WebSocket unless a proxy in between only allows polling.</summary>
    public TransportProtocol Transport { get; set; } = TransportProtocol.WebSocket;

    /// <summary>
    /// Upstream Socket.IO sockets kept open ahead of need, so a new hub connection takes one instead of waiting
    /// for TROM.AI's handshake (<see cref="WarmUpstreamSockets"/>). 0 turns it off; WebSocket transport only.
    /// </summary>
    public int WarmSockets { get; set; } = 8;

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

    /// <summary>
    /// How long the sessions of an instance that died without closing them stay findable. Each
    /// instance renews its own liveness every third of it: one Redis write, however many sessions it holds.
    /// </summary>
    public TimeSpan SessionTtl { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Longest wait for one Redis call; past it the call counts as failed. While Redis is down, calls fail at once.</summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(2);

    public bool Enabled => !string.IsNullOrWhiteSpace(Configuration);
}

public sealed class RelayOptions
{
    /// <summary>
    /// Events that may wait for one client. Past it the gateway stops reading that connection's
    /// upstream socket until the client has taken some (TCP then slows TROM.AI down): it bounds the
    /// memory one client can hold, and a burst (after a stall) waits instead of cutting a client that reads.
    /// </summary>
    public int MaxBacklog { get; set; } = 20_000;

    /// <summary>
    /// How long a client may take no event at all while <see cref="MaxBacklog"/> events wait for it;
    /// then its connection is closed. Its upstream socket is not read meanwhile, Engine.IO's pings
    /// included, so keep it well below TROM.AI's ping timeout (Socket.IO's default: 20 s).
    /// </summary>
    public TimeSpan SlowClientTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a hub connection may send nothing (no message, not even SignalR's keep-alive ping,
    /// which clients send every 15 s) before it is closed and its upstream session freed. SignalR's
    /// own client timeout only starts at a client's first ping, so a client that never pings would
    /// otherwise hold its upstream session forever.
    /// </summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Bytes of sent messages the hub keeps per connection so that a client using stateful reconnect
    /// gets them again after its socket drops. Past it, sending waits for the client to acknowledge,
    /// and the connection's backlog grows toward <see cref="MaxBacklog"/>.
    /// </summary>
    public long StatefulReconnectBufferBytes { get; set; } = 1024 * 1024;
}

public sealed class PlaygroundOptions
{
    /// <summary>
    /// Serves the chat page at <c>/playground/</c>. Unset: on in the Development environment, off
    /// elsewhere, where <c>/playground</c> goes to TROM.AI like every other path.
    /// </summary>
    public bool? Enabled { get; set; }
}

public sealed class ProxyOptions
{
    /// <summary>Largest prediction body (JSON or multipart) the gateway reads to rewrite <c>socketIOClientId</c>; larger ones get 413.</summary>
    public long MaxPredictionBodyBytes { get; set; } = 50 * 1024 * 1024;

    /// <summary>
    /// Prediction body bytes this instance holds in memory at once, all requests together: a JSON body
    /// whole, a multipart body up to its <c>socketIOClientId</c>. A body that would pass it gets 503 with
    /// <c>Retry-After</c>. At least <see cref="MaxPredictionBodyBytes"/>.
    /// </summary>
    public long MaxBufferedBodyBytes { get; set; } = 128 * 1024 * 1024;

    /// <summary>How long a proxied request may go without a byte either way. A prediction POST blocks until the whole flow has run.</summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromMinutes(10);
}
