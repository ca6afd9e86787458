namespace TromAi.Gateway.Upstream;

/// <summary>
/// TROM.AI sent nothing for <c>Gateway:Proxy:ActivityTimeout</c>. An <see cref="IOException"/>, as a
/// socket's read timeout is: whoever handles a stream that broke off handles this one too. The message
/// names the setting, never the address, so it may be shown to clients.
/// </summary>
public sealed class UpstreamTimeoutException(TimeSpan timeout, Exception? inner = null)
    : IOException($"TROM.AI sent nothing for {timeout} (Gateway:Proxy:ActivityTimeout).", inner)
{
    public TimeSpan Timeout { get; } = timeout;
}
