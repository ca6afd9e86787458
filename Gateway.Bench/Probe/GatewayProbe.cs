using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Bench.Probe;

/// <summary>What the gateway's runtime says about its managed memory, read through <see cref="GatewayProbeServer"/>.</summary>
internal sealed record ManagedHeapSample(
    long LiveBytes,
    long HeapSizeBytes,
    long CommittedBytes,
    long AllocatedBytes,
    int Gen0,
    int Gen1,
    int Gen2,
    double PauseMs,
    int ThreadPoolThreads,
    bool ServerGc,
    long ThreadPoolWorkItems,
    long LockContentions,
    long MethodsCompiled,
    double JitMs);

/// <summary>The bench's end of <see cref="GatewayProbeServer"/>: one request per connection.</summary>
internal sealed class GatewayProbe(string socketPath)
{
    public string SocketPath { get; } = socketPath;

    /// <param name="collect">Force a full blocking GC first, so <see cref="ManagedHeapSample.LiveBytes"/> is what is really held.</param>
    public async Task<ManagedHeapSample> ReadAsync(bool collect, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), cancellationToken);
        await socket.SendAsync(Encoding.ASCII.GetBytes(collect ? "collect\n" : "read\n"), cancellationToken);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var answer = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
        var root = answer.RootElement;
        return new ManagedHeapSample(
            root.GetProperty("liveBytes").GetInt64(),
            root.GetProperty("heapSizeBytes").GetInt64(),
            root.GetProperty("committedBytes").GetInt64(),
            root.GetProperty("allocatedBytes").GetInt64(),
            root.GetProperty("gen0").GetInt32(),
            root.GetProperty("gen1").GetInt32(),
            root.GetProperty("gen2").GetInt32(),
            root.GetProperty("pauseMs").GetDouble(),
            root.GetProperty("threadPoolThreads").GetInt32(),
            root.GetProperty("serverGc").GetBoolean(),
            root.GetProperty("threadPoolWorkItems").GetInt64(),
            root.GetProperty("lockContentions").GetInt64(),
            root.GetProperty("methodsCompiled").GetInt64(),
            root.GetProperty("jitMs").GetDouble());
    }
}
