using System.Net.Sockets;
using System.Runtime;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Bench.Probe;

/// <summary>
/// Runs inside the gateway process, which the bench starts with this assembly as a startup hook, so the
/// gateway's managed heap and allocations can be read from outside without changing the gateway and
/// without EventPipe tooling. It answers one command per connection on a Unix domain socket:
/// <c>read</c> (counters as they are), <c>collect</c> (after a full blocking GC, for live bytes) or
/// <c>allocations</c> (the <see cref="AllocationSampler"/>'s bytes per type, when it is on).
/// It uses a dedicated thread and no thread-pool work, so it costs nothing between requests and still
/// answers when the gateway's thread pool is saturated.
/// </summary>
internal static class GatewayProbeServer
{
    public const string SocketPathVariable = "TROMAI_BENCH_PROBE";

    public static void Start(string? socketPath)
    {
        if (string.IsNullOrEmpty(socketPath))
        {
            return;
        }

        AllocationSampler.StartIfAsked();
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        File.Delete(socketPath);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(4);
        new Thread(() => Serve(listener)) { IsBackground = true, Name = "bench-probe" }.Start();
    }

    private static void Serve(Socket listener)
    {
        var command = new byte[64];
        while (true)
        {
            using var client = listener.Accept();
            try
            {
                var length = client.Receive(command);
                var request = Encoding.ASCII.GetString(command, 0, length).Trim();
                client.Send(request == "allocations" ? Allocations() : Measure(request == "collect"));
            }
            catch (SocketException)
            {
                // The bench went away mid-request; keep serving the next one.
            }
        }
    }

    /// <summary>The <see cref="AllocationSampler"/>'s top types since the last call, or an empty object when it is off.</summary>
    private static byte[] Allocations()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var (type, bytes) in AllocationSampler.Instance?.TakeTop(40) ?? [])
            {
                json.WriteNumber(type, bytes);
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static byte[] Measure(bool collect)
    {
        // GetTotalMemory(true) collects until the heap stops shrinking: the live bytes, not garbage awaiting a GC.
        var liveBytes = collect ? GC.GetTotalMemory(forceFullCollection: true) : GC.GetTotalMemory(forceFullCollection: false);
        var info = GC.GetGCMemoryInfo();
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("liveBytes", liveBytes);
            json.WriteNumber("heapSizeBytes", info.HeapSizeBytes);
            json.WriteNumber("committedBytes", info.TotalCommittedBytes);
            json.WriteNumber("allocatedBytes", GC.GetTotalAllocatedBytes(precise: true));
            json.WriteNumber("gen0", GC.CollectionCount(0));
            json.WriteNumber("gen1", GC.CollectionCount(1));
            json.WriteNumber("gen2", GC.CollectionCount(2));
            json.WriteNumber("pauseMs", GC.GetTotalPauseDuration().TotalMilliseconds);
            json.WriteNumber("threadPoolThreads", ThreadPool.ThreadCount);
            json.WriteNumber("threadPoolWorkItems", ThreadPool.CompletedWorkItemCount);
            json.WriteNumber("lockContentions", Monitor.LockContentionCount);
            json.WriteNumber("methodsCompiled", System.Runtime.JitInfo.GetCompiledMethodCount());
            json.WriteNumber("jitMs", System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds);
            json.WriteBoolean("serverGc", GCSettings.IsServerGC);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
