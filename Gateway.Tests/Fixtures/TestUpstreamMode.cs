namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>Which TROM.AI the test upstream behaves as (see <c>upstream/README.md</c>, "Modes").</summary>
public enum TestUpstreamMode
{
    /// <summary>1.x to 2.0: Socket.IO. The default.</summary>
    SocketIO,

    /// <summary>2.2.5 and later: no Socket.IO, predictions stream over SSE (<c>STREAMING=sse</c>).</summary>
    Sse,

    /// <summary>
    /// 3.x as 3.1.4 behaves (<c>TROMAI_VERSION=3</c>): SSE plus API keys per chatflow, periodic heartbeats, a slow
    /// <c>metadata</c>, an Agentflow V2 (<c>agentflow</c>) and an admin API that wants a key.
    /// </summary>
    TromAi3,
}
