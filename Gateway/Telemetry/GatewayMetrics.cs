using System.Collections.Frozen;
using System.Diagnostics.Metrics;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// The gateway's own instruments, on the <c>TromAi.Gateway</c> meter. Every method is a single
/// instrument call on the relay's hot path: tag values are string constants (no boxing, no
/// formatting), and free-form input (event names, reasons) is folded into a fixed set so that one
/// client inventing event names cannot grow the series without bound.
/// </summary>
internal sealed class GatewayMetrics
{
    public const string MeterName = "TromAi.Gateway";

    /// <summary>Tag value for an event name, outcome or reason outside the known set.</summary>
    public const string Other = "other";

    // Relay latency is the time an event spends in the gateway: sub-millisecond when the client
    // keeps up, seconds when it lags towards Relay:MaxBacklog.
    private static readonly double[] LatencyBucketsMs =
        [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

    private static readonly KeyValuePair<string, object?> Connecting = new("state", "connecting");
    private static readonly KeyValuePair<string, object?> Connected = new("state", "connected");
    private static readonly KeyValuePair<string, object?> Reconnecting = new("state", "reconnecting");

    /// <summary>
    /// The event names of tromai-protocol.md (both eras), the gateway's own notifications, and
    /// <see cref="Other"/> for the rest.
    /// </summary>
    internal static readonly string[] EventNames =
    [
        "start", "token", "end", "sourceDocuments", "tool", "usedTools", "calledTools", "fileAnnotations",
        "agentReasoning", "nextAgent", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "abort",
        "action", "thinking", "artifacts", "metadata", "usageMetadata", "error",
        "tts_start", "tts_data", "tts_end", "tts_abort",
        "gateway:upstream-lost", "gateway:upstream-restored", "gateway:draining",
        Other,
    ];

    // Looked up, not compared: the tag then holds our interned constant, never the caller's string,
    // and the lookup neither allocates nor grows.
    private static readonly FrozenSet<string> KnownEventNames = EventNames.ToFrozenSet(StringComparer.Ordinal);
    private static readonly FrozenSet<string> KnownOutcomes = RewriteOutcome.All.ToFrozenSet(StringComparer.Ordinal);
    private static readonly FrozenSet<string> KnownReasons = RejectReason.All.ToFrozenSet(StringComparer.Ordinal);

    private readonly UpDownCounter<long> _sessions;
    private readonly UpDownCounter<long> _upstreamSessions;
    private readonly UpDownCounter<long> _warmSockets;
    private readonly Counter<long> _eventsRelayed;
    private readonly Histogram<double> _relayLatency;
    private readonly UpDownCounter<long> _queueDepth;
    private readonly Counter<long> _rewrites;
    private readonly Counter<long> _rejects;

    public GatewayMetrics(IMeterFactory meterFactory)
    {
        // Created through the container's factory: a test host (or a second gateway in one process)
        // gets its own meter, and collectors can tell them apart by Meter.Scope.
        var meter = meterFactory.Create(MeterName);
        _sessions = meter.CreateUpDownCounter<long>(
            "tromai.gateway.sessions.active", "{session}", "Hub connections bridged to TROM.AI, open now.");
        _upstreamSessions = meter.CreateUpDownCounter<long>(
            "tromai.gateway.upstream.sessions", "{session}", "Upstream Socket.IO sessions by state (connecting, connected, reconnecting).");
        _warmSockets = meter.CreateUpDownCounter<long>(
            "tromai.gateway.upstream.warm_sockets", "{socket}", "Upstream Socket.IO sockets opened ahead, waiting for a hub connection to take them.");
        _eventsRelayed = meter.CreateCounter<long>(
            "tromai.gateway.events.relayed", "{event}", "Events sent to hub connections, by event name (unknown names count as other).");
        _relayLatency = meter.CreateHistogram(
            "tromai.gateway.relay.latency", "ms", "Time from an event's arrival at the gateway until it was handed to its hub connection.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBucketsMs });
        _queueDepth = meter.CreateUpDownCounter<long>(
            "tromai.gateway.relay.queue.depth", "{event}", "Events waiting in relay queues, all connections together.");
        _rewrites = meter.CreateCounter<long>(
            "tromai.gateway.rewrites", "{request}", "Prediction requests by what the socketIOClientId rewrite did.");
        _rejects = meter.CreateCounter<long>(
            "tromai.gateway.rejects", "{rejection}", "Connections, requests and messages the gateway refused, by reason.");
    }

    /// <summary>A hub connection's upstream session is ready and the connection is live.</summary>
    public void SessionStarted() => _sessions.Add(1);

    /// <summary>A connection counted by <see cref="SessionStarted"/> ended.</summary>
    public void SessionEnded() => _sessions.Add(-1);

    /// <summary>
    /// An upstream session moved from <paramref name="from"/> to <paramref name="to"/>; null is
    /// "not counted" (before it started connecting, after it closed).
    /// </summary>
    public void UpstreamStateChanged(UpstreamState? from, UpstreamState? to)
    {
        if (from == to)
        {
            return;
        }

        if (from is { } previous)
        {
            _upstreamSessions.Add(-1, StateTag(previous));
        }

        if (to is { } next)
        {
            _upstreamSessions.Add(1, StateTag(next));
        }
    }

    /// <summary>A warm upstream socket joined the pool (+1), or left it: taken, closed by TROM.AI, or closed at shutdown (-1).</summary>
    public void WarmSocketsChanged(int delta) => _warmSockets.Add(delta);

    /// <summary>One event reached its hub connection (or its <c>Predict</c> stream) after <paramref name="latencyMs"/> in the gateway.</summary>
    public void EventRelayed(string eventName, double latencyMs)
    {
        _eventsRelayed.Add(1, new KeyValuePair<string, object?>("event", KnownEventName(eventName)));
        _relayLatency.Record(latencyMs);
    }

    /// <summary>An item entered a relay queue.</summary>
    public void Enqueued() => _queueDepth.Add(1);

    /// <summary>Items left a relay queue: read by its pump, or thrown away with a closed connection.</summary>
    public void Dequeued(int count = 1) => _queueDepth.Add(-count);

    /// <summary>A prediction request passed the rewrite; <paramref name="outcome"/> is one of <see cref="RewriteOutcome"/>.</summary>
    public void Rewrite(string outcome) => _rewrites.Add(1, new KeyValuePair<string, object?>("outcome", KnownOutcome(outcome)));

    /// <summary>The gateway refused something; <paramref name="reason"/> is one of <see cref="RejectReason"/>.</summary>
    public void Rejected(string reason) => _rejects.Add(1, new KeyValuePair<string, object?>("reason", KnownReason(reason)));

    /// <summary>
    /// Every series the gateway can report, at 0: a fresh instance then answers "nothing happened"
    /// instead of "no data", so an alert on a rate or a ratio works from the first scrape. Called
    /// once the collector listens (<see cref="GatewaySeriesAtZero"/>); adding 0 changes no value.
    /// The latency histogram is left out: a histogram series exists only once something was
    /// measured, and a made-up sample would show in its count and quantiles.
    /// </summary>
    public void ReportZeros()
    {
        _sessions.Add(0);
        _queueDepth.Add(0);
        _warmSockets.Add(0);
        foreach (var state in (ReadOnlySpan<KeyValuePair<string, object?>>)[Connecting, Connected, Reconnecting])
        {
            _upstreamSessions.Add(0, state);
        }

        foreach (var name in EventNames)
        {
            _eventsRelayed.Add(0, new KeyValuePair<string, object?>("event", name));
        }

        foreach (var outcome in RewriteOutcome.All)
        {
            _rewrites.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        }

        foreach (var reason in RejectReason.All)
        {
            _rejects.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    private static KeyValuePair<string, object?> StateTag(UpstreamState state) => state switch
    {
        UpstreamState.Connecting => Connecting,
        UpstreamState.Connected => Connected,
        _ => Reconnecting,
    };

    internal static string KnownEventName(string name) => KnownEventNames.TryGetValue(name, out var known) ? known : Other;

    private static string KnownOutcome(string outcome) => KnownOutcomes.TryGetValue(outcome, out var known) ? known : Other;

    private static string KnownReason(string reason) => KnownReasons.TryGetValue(reason, out var known) ? known : Other;

    /// <summary>The <c>outcome</c> tag of <c>tromai.gateway.rewrites</c>.</summary>
    public static class RewriteOutcome
    {
        /// <summary>A hub connection's id, replaced by its upstream socket id.</summary>
        public const string Rewritten = "rewritten";

        /// <summary>No id, or one that is not a hub connection's: forwarded as it came.</summary>
        public const string Unchanged = "unchanged";

        /// <summary>A hub connection whose upstream session is reconnecting: answered 503.</summary>
        public const string Reconnecting = "reconnecting";

        /// <summary>SSE mode: asked upstream with <c>streaming: true</c> and relayed to the connection.</summary>
        public const string Streamed = "streamed";

        /// <summary>Every value of the tag, <see cref="Other"/> included.</summary>
        internal static readonly string[] All = [Rewritten, Unchanged, Reconnecting, Streamed, Other];
    }

    /// <summary>The <c>reason</c> tag of <c>tromai.gateway.rejects</c>.</summary>
    public static class RejectReason
    {
        /// <summary>A client stopped reading: more than Relay:MaxBacklog events waited.</summary>
        public const string Backlog = "backlog";

        public const string ConnectionLimit = "connection_limit";

        public const string IpConnectionLimit = "ip_connection_limit";

        public const string ConnectRate = "connect_rate";

        public const string RequestRate = "request_rate";

        /// <summary>A prediction body over Proxy:MaxPredictionBodyBytes (413).</summary>
        public const string BodyTooLarge = "body_too_large";

        /// <summary>A prediction body that is not valid JSON or multipart (400).</summary>
        public const string InvalidBody = "invalid_body";

        /// <summary>A prediction body that would pass Proxy:MaxBufferedBodyBytes, the bytes all bodies may hold at once (503).</summary>
        public const string BodyBudget = "body_budget";

        public const string MessageTooLarge = "message_too_large";

        /// <summary>A new hub connection whose upstream session could not be opened (handshake error).</summary>
        public const string UpstreamUnavailable = "upstream_unavailable";

        public const string UpstreamTimeout = "upstream_timeout";

        public const string Unauthorized = "unauthorized";

        /// <summary>Refused because this instance is shutting down.</summary>
        public const string Draining = "draining";

        /// <summary>Every value of the tag, <see cref="Other"/> included.</summary>
        internal static readonly string[] All =
        [
            Backlog, ConnectionLimit, IpConnectionLimit, ConnectRate, RequestRate, BodyTooLarge, InvalidBody, BodyBudget,
            MessageTooLarge, UpstreamUnavailable, UpstreamTimeout, Unauthorized, Draining, Other,
        ];
    }
}
