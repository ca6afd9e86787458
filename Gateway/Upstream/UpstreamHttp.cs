namespace TromAi.Gateway.Upstream;

/// <summary>The gateway's own HTTP calls to TROM.AI (Predict, abort, SSE predictions, the mode probe), as opposed to proxied ones.</summary>
internal static class UpstreamHttp
{
    public const string ClientName = "tromai";
}
