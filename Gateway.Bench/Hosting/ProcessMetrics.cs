using System.Globalization;
using System.Runtime.InteropServices;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>What Linux says about a process, from /proc: its own resident memory and CPU time, nobody else's.</summary>
internal static class ProcessMetrics
{
    private const int ClockTicksName = 2; // _SC_CLK_TCK

    private static readonly double TicksPerSecond = Sysconf(ClockTicksName);

    /// <summary>Resident set size (VmRSS).</summary>
    public static long RssBytes(int pid) => StatusField(pid, "VmRSS:") * 1024;

    public static int Threads(int pid) => (int)StatusField(pid, "Threads:");

    /// <summary>User plus system CPU time the process has used so far (all its threads).</summary>
    public static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) is in parentheses and may contain spaces: count fields after its closing one.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture); // utime, stime
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }

    /// <summary>CPU time every process on the machine has used since boot (/proc/stat: all but idle and iowait).</summary>
    public static TimeSpan MachineBusyTime()
    {
        using var stat = new StreamReader("/proc/stat");
        var fields = stat.ReadLine()!.Split(' ', StringSplitOptions.RemoveEmptyEntries); // "cpu user nice system idle iowait irq softirq steal ..."
        long busy = 0;
        for (var i = 1; i <= 8; i++)
        {
            if (i is not 4 and not 5)
            {
                busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }
        }

        return TimeSpan.FromSeconds(busy / TicksPerSecond);
    }

    /// <summary>File descriptors the process holds (sockets included).</summary>
    public static int OpenFiles(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    /// <summary>This process's open-file limit, which the processes the bench starts inherit (the runtime raises the soft limit to the hard one at start-up).</summary>
    public static int OpenFileLimit()
    {
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var soft = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                return soft == "unlimited" ? int.MaxValue : int.Parse(soft, CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("/proc/self/limits has no 'Max open files' line.");
    }

    public static int ProcessorCount => Environment.ProcessorCount;

    public static long TotalMemoryBytes => StatusFieldOf("/proc/meminfo", "MemTotal:") * 1024;

    private static long StatusField(int pid, string name) => StatusFieldOf($"/proc/{pid}/status", name);

    private static long StatusFieldOf(string path, string name)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith(name, StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(name.Length).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"{path} has no '{name}' line.");
    }

    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long Sysconf(int name);
}

/// <summary>
/// CPU time of the processes under test, and of the whole machine, at one moment. Two of them make a
/// <see cref="CpuUse"/>.
/// </summary>
internal readonly record struct CpuSample(TimeSpan? Gateway, TimeSpan? Upstream, TimeSpan Bench, TimeSpan Machine, long Timestamp)
{
    /// <param name="gatewayPid">Null for a gateway whose process is unknown: its CPU then counts as "other".</param>
    public static CpuSample Take(int? gatewayPid, int? upstreamPid) => new(
        gatewayPid is { } g ? ProcessMetrics.CpuTime(g) : null,
        upstreamPid is { } u ? ProcessMetrics.CpuTime(u) : null,
        ProcessMetrics.CpuTime(Environment.ProcessId),
        ProcessMetrics.MachineBusyTime(),
        System.Diagnostics.Stopwatch.GetTimestamp());
}

/// <summary>
/// What each process spent during a measured window. All of them share the machine's cores, so a busy upstream or
/// bench limits the gateway too; <see cref="Other"/> is everything else on the machine (another build or test run),
/// which says how far to trust the window.
/// </summary>
internal sealed record CpuUse(TimeSpan Wall, TimeSpan? Gateway, TimeSpan? Upstream, TimeSpan Bench, TimeSpan Other)
{
    public static CpuUse Between(CpuSample before, CpuSample after)
    {
        var gateway = after.Gateway - before.Gateway;
        var upstream = after.Upstream - before.Upstream;
        var bench = after.Bench - before.Bench;
        var other = after.Machine - before.Machine - bench - (gateway ?? TimeSpan.Zero) - (upstream ?? TimeSpan.Zero);
        return new CpuUse(
            System.Diagnostics.Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp),
            gateway,
            upstream,
            bench,
            other < TimeSpan.Zero ? TimeSpan.Zero : other); // clock-tick rounding can make it slightly negative
    }

    /// <summary>Cores each used on average (1.0 = one core busy the whole window).</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["wallS"] = Math.Round(Wall.TotalSeconds, 3),
        ["gatewayCores"] = Cores(Gateway),
        ["upstreamCores"] = Cores(Upstream),
        ["benchCores"] = Cores(Bench),
        ["otherCores"] = Cores(Other),
    };

    /// <summary>"gateway 0.77, upstream 0.88, bench 0.21, other 0 cores", for a table cell.</summary>
    public string Summary => FormattableString.Invariant(
        $"gateway {Cores(Gateway)?.ToString("0.##", CultureInfo.InvariantCulture) ?? "n/a"}, upstream {Cores(Upstream)?.ToString("0.##", CultureInfo.InvariantCulture) ?? "n/a"}, bench {Cores(Bench):0.##}, other {Cores(Other):0.##} cores");

    private double? Cores(TimeSpan? cpu) => cpu is { } used ? Math.Round(used.TotalSeconds / Wall.TotalSeconds, 2) : null;
}
