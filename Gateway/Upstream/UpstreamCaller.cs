namespace TromAi.Gateway.Upstream;

/// <summary>
/// The client on whose behalf the gateway calls TROM.AI, as far as TROM.AI may see it: the client's
/// own TROM.AI key (a chatflow's API key), the <c>Origin</c> some chatflows check, and its address.
/// Built by <see cref="UpstreamHeaderPolicy.CallerOf"/> from the client's request, never from a
/// credential that is the gateway's.
/// </summary>
internal sealed record UpstreamCaller(string? TromAiKey, string? Origin, string? ClientAddress)
{
    /// <summary>The gateway itself (probes): no client behind the call.</summary>
    public static readonly UpstreamCaller Gateway = new(null, null, null);
}
