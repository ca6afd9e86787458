namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Attributes that name a host, a port or a URL: on outgoing HTTP they are TROM.AI's address, on
/// DNS its host name. <c>/metrics</c> is open to scrapers even with gateway authentication on, and
/// exports leave for a collector the gateway does not control, so no metric or span carries them
/// (issue 10). Kestrel's own listening address goes too: one rule, nothing to reason about.
/// </summary>
internal static class AddressAttributes
{
    public static readonly string[] Keys =
    [
        "server.address",
        "server.port",
        "network.peer.address",
        "network.peer.port",
        "url.full",
        "dns.question.name",
    ];
}
