using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Hosting;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>The gateway process's memory at one moment: RSS as the OS counts it, and (with the probe) the managed heap's live bytes.</summary>
internal sealed record MemorySample(long RssBytes, long RssAfterGcBytes, long? LiveHeapBytes, long? CommittedHeapBytes, int OpenFiles, int Threads)
{
    public static async Task<MemorySample> TakeAsync(GatewayServer gateway, CancellationToken cancellationToken)
    {
        var pid = gateway.ProcessId!.Value;
        // RSS first: the forced collection that measures live bytes would otherwise shrink what we report as "as it is".
        var rss = ProcessMetrics.RssBytes(pid);
        var heap = gateway.Probe is { } probe ? await probe.ReadAsync(collect: true, cancellationToken) : null;
        return new MemorySample(rss, ProcessMetrics.RssBytes(pid), heap?.LiveBytes, heap?.CommittedBytes, ProcessMetrics.OpenFiles(pid), ProcessMetrics.Threads(pid));
    }

    public JsonObject ToJson() => new()
    {
        ["rssBytes"] = RssBytes,
        ["rssAfterGcBytes"] = RssAfterGcBytes,
        ["liveHeapBytes"] = LiveHeapBytes,
        ["committedHeapBytes"] = CommittedHeapBytes,
        ["openFiles"] = OpenFiles,
        ["threads"] = Threads,
    };

    public override string ToString() =>
        Invariant($"RSS {Bytes(RssBytes)}, live heap {(LiveHeapBytes is { } live ? Bytes(live) : "n/a")}, {OpenFiles} fds, {Threads} threads");
}
