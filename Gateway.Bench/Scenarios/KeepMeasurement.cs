using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// What keeping a prediction's stream for a resume costs the gateway (README, "Resumable answers"), measured
/// in process on the in-memory store the relay writes into: time and allocation per kept event, memory
/// retained per event and per stream. No upstream, no client: the part keeping adds to the relay's hot path.
/// Run as <c>Gateway.Bench keep</c>; not part of <c>all</c>.
/// </summary>
internal static class KeepMeasurement
{
    private const int Events = 200_000;
    private const int Streams = 20_000;
    private const int Rounds = 5;

    public static async Task<int> RunAsync(TextWriter output)
    {
        var options = Options.Create(new GatewayOptions
        {
            Streams = new StreamsOptions { MaxEventsPerStream = Events, MaxBytesPerStream = 1L << 34, MaxTotalBytes = 1L << 36 },
        });

        // A token as SocketIOClient hands it over: one JsonElement string of a typical token's length.
        using var token = JsonDocument.Parse("\" streaming\"");
        object?[] args = [token.RootElement];

        var perEvent = new List<double>();
        var allocated = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            using var store = new MemoryStreamStore(options, TimeProvider.System, NullLogger<MemoryStreamStore>.Instance);
            var stream = store.CreateStream(new StreamStart(StreamIds.New(), "bench", null, null));
            var before = GC.GetAllocatedBytesForCurrentThread();
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < Events; i++)
            {
                stream.Append("token", args);
            }

            var elapsed = Stopwatch.GetElapsedTime(started);
            allocated.Add((GC.GetAllocatedBytesForCurrentThread() - before) / (double)Events);
            perEvent.Add(elapsed.TotalNanoseconds / Events);
        }

        long retainedPerEvent;
        using (var store = new MemoryStreamStore(options, TimeProvider.System, NullLogger<MemoryStreamStore>.Instance))
        {
            var baseline = GC.GetTotalMemory(forceFullCollection: true);
            var stream = store.CreateStream(new StreamStart(StreamIds.New(), "bench", null, null));
            for (var i = 0; i < Events; i++)
            {
                stream.Append("token", args);
            }

            retainedPerEvent = (GC.GetTotalMemory(forceFullCollection: true) - baseline) / Events;
            GC.KeepAlive(stream);
        }

        long retainedPerStream;
        using (var store = new MemoryStreamStore(options, TimeProvider.System, NullLogger<MemoryStreamStore>.Instance))
        {
            var baseline = GC.GetTotalMemory(forceFullCollection: true);
            for (var i = 0; i < Streams; i++)
            {
                store.CreateStream(new StreamStart(StreamIds.New(), "bench", Guid.NewGuid().ToString(), null));
            }

            retainedPerStream = (GC.GetTotalMemory(forceFullCollection: true) - baseline) / Streams;
        }

        perEvent.Sort();
        allocated.Sort();
        var c = CultureInfo.InvariantCulture;
        await output.WriteLineAsync("| measure | value |");
        await output.WriteLineAsync("|---|---|");
        await output.WriteLineAsync(string.Create(c, $"| time to keep one token event (median of {Rounds} x {Events:N0}) | {perEvent[Rounds / 2]:F0} ns (min {perEvent[0]:F0}, max {perEvent[^1]:F0}) |"));
        await output.WriteLineAsync(string.Create(c, $"| allocated per kept event | {allocated[Rounds / 2]:F0} B |"));
        await output.WriteLineAsync(string.Create(c, $"| retained per kept event (managed heap) | {retainedPerEvent} B |"));
        await output.WriteLineAsync(string.Create(c, $"| retained per stream with no event ({Streams:N0} streams) | {retainedPerStream} B |"));
        return 0;
    }
}
