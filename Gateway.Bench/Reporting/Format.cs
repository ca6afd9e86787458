using System.Globalization;

namespace TromAi.Gateway.Bench.Reporting;

/// <summary>Numbers as the table shows them: few digits, units spelled out, invariant culture.</summary>
internal static class Format
{
    public static string Ms(double ms) => double.IsNaN(ms) ? "n/a" : ms switch
    {
        < 10 and > -10 => ms.ToString("0.00", CultureInfo.InvariantCulture),
        < 100 and > -100 => ms.ToString("0.0", CultureInfo.InvariantCulture),
        _ => ms.ToString("0", CultureInfo.InvariantCulture),
    };

    public static string SignedMs(double ms) => (ms >= 0 ? "+" : "") + Ms(ms);

    public static string Bytes(double bytes) => Math.Abs(bytes) switch
    {
        double.NaN => "n/a",
        < 1024 => bytes.ToString("0", CultureInfo.InvariantCulture) + " B",
        < 1024 * 1024 => (bytes / 1024).ToString("0.0", CultureInfo.InvariantCulture) + " KB",
        < 1024L * 1024 * 1024 => (bytes / (1024 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB",
        _ => (bytes / (1024 * 1024 * 1024)).ToString("0.00", CultureInfo.InvariantCulture) + " GB",
    };

    public static string Count(double value) => value switch
    {
        double.NaN => "n/a",
        >= 10_000 => (value / 1000).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString("0.##", CultureInfo.InvariantCulture),
    };

    public static string Ratio(double value) => double.IsNaN(value) || double.IsInfinity(value) ? "n/a" : value.ToString("0.00", CultureInfo.InvariantCulture);

    public static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
