using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace TromAi.Gateway.Bench.Probe;

/// <summary>
/// Which types the gateway allocates, sampled by the runtime itself: its <c>GCAllocationTick</c> event fires
/// about every 100 KB allocated and names the type that crossed the mark, so over a run the bytes per type
/// are proportional to what each type costs. Inside the gateway process (the probe's startup hook), on only
/// when the bench asks for it (<c>--gateway-env TROMAI_BENCH_ALLOCATIONS=1</c>): listening costs a little.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    public const string Variable = "TROMAI_BENCH_ALLOCATIONS";

    private const EventKeywords GcKeyword = (EventKeywords)0x1;

    private readonly ConcurrentDictionary<string, long> _bytes = new(StringComparer.Ordinal);

    public static AllocationSampler? Instance { get; private set; }

    public static void StartIfAsked()
    {
        if (Environment.GetEnvironmentVariable(Variable) == "1")
        {
            Instance = new AllocationSampler();
        }
    }

    /// <summary>Sampled bytes per type, largest first; the counts start again after each call.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> TakeTop(int count)
    {
        var top = _bytes.OrderByDescending(entry => entry.Value).Take(count).ToList();
        _bytes.Clear();
        return top;
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || eventData.Payload is not { } payload)
        {
            return;
        }

        var type = eventData.PayloadNames!.IndexOf("TypeName") is var at and >= 0 ? payload[at] as string ?? "?" : "?";
        var amount = eventData.PayloadNames.IndexOf("AllocationAmount64") is var bytesAt and >= 0 ? Convert.ToInt64(payload[bytesAt], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        _bytes.AddOrUpdate(type, amount, (_, sum) => sum + amount);
    }
}
