using System.Text.Json.Nodes;

namespace TromAi.Gateway.Bench.Streams;

/// <summary>Percentiles (nearest rank) of a set of latencies in milliseconds.</summary>
internal readonly record struct LatencySummary(int Samples, double P50, double P90, double P99, double Max)
{
    public static LatencySummary Of(List<float> samples) => Of(samples.ToArray());

    public static LatencySummary Of(float[] samples)
    {
        if (samples.Length == 0)
        {
            return new LatencySummary(0, double.NaN, double.NaN, double.NaN, double.NaN);
        }

        Array.Sort(samples);
        return new LatencySummary(samples.Length, At(samples, 0.50), At(samples, 0.90), At(samples, 0.99), samples[^1]);
    }

    public static LatencySummary Of(IReadOnlyList<TimeSpan> durations)
    {
        var samples = new float[durations.Count];
        for (var i = 0; i < samples.Length; i++)
        {
            samples[i] = (float)durations[i].TotalMilliseconds;
        }

        return Of(samples);
    }

    public JsonObject ToJson() => new()
    {
        ["samples"] = Samples,
        ["p50"] = Round(P50),
        ["p90"] = Round(P90),
        ["p99"] = Round(P99),
        ["max"] = Round(Max),
    };

    // NaN (no samples) is not JSON: null says "not measured".
    internal static double? Round(double value) => double.IsNaN(value) ? null : Math.Round(value, 3);

    private static double At(float[] sorted, double quantile) => sorted[Math.Max(0, (int)Math.Ceiling(quantile * sorted.Length) - 1)];
}
