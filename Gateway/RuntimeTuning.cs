namespace TromAi.Gateway;

/// <summary>Process-wide runtime settings, applied by <c>Program</c> before anything else runs.</summary>
public static class RuntimeTuning
{
    /// <summary>The runtime's own variable: how many arrays of one size the shared <c>ArrayPool</c> keeps per core (32 unless set).</summary>
    internal const string ArraysPerPartitionVariable = "DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION";

    internal const string ArraysPerPartition = "256";

    /// <summary>
    /// Lets the shared <c>ArrayPool</c> keep 256 arrays of a size per core instead of 32, unless the
    /// variable is set already (an operator's value wins). Must run before the pool first keeps an
    /// array, which is when the runtime reads the variable: the first statement of <c>Program</c>.
    /// </summary>
    /// <remarks>
    /// Every event sent to a SignalR client is written into its connection's pipe, which rents a 4 KB
    /// segment from this pool when it is empty and returns it once the transport has sent it, on another
    /// thread. After any pause (a GC, a busy core) hundreds of connections hold one each at the same time:
    /// past 32 per core the rents allocate and the returns are thrown away. Sampled without bias
    /// (the runtime's AllocationSampled events), those 4 KB arrays were 54 % of the bytes allocated per
    /// relayed event at 200 sessions × 50 tok/s; with 256 per core they allocate almost never
    /// (Gateway.Bench/RESULTS.md, 2026-12-02 14:17). It keeps at most 256 arrays of each size per core,
    /// 2 MB for the 4 KB size on two cores, and the runtime trims arrays that go unused.
    /// </remarks>
    public static void Apply()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ArraysPerPartitionVariable)))
        {
            Environment.SetEnvironmentVariable(ArraysPerPartitionVariable, ArraysPerPartition);
        }
    }
}
