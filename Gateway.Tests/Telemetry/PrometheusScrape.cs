using System.Globalization;
using System.Net;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>A <c>/metrics</c> answer as a Prometheus server reads it: series (name and labels) with their values, and each family's type.</summary>
internal sealed class PrometheusScrape
{
    private PrometheusScrape(HttpResponseMessage response, string text)
    {
        Status = response.StatusCode;
        ContentType = response.Content.Headers.ContentType?.ToString();
        Text = text;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Types[parts[2]] = parts[3];
            }
            else if (line[0] != '#')
            {
                // "name{labels} value [timestamp]": label values may hold spaces, the value follows the closing brace.
                var end = line.LastIndexOf('}') is var brace and >= 0 ? brace + 1 : line.IndexOf(' ', StringComparison.Ordinal);
                var value = line[(end + 1)..].Split(' ')[0];
                // OpenTelemetry writes "name{}" for a series without labels; Prometheus reads it as "name".
                Series[line[..end].Replace("{}", "", StringComparison.Ordinal)] = double.Parse(value, CultureInfo.InvariantCulture);
            }
        }
    }

    public HttpStatusCode Status { get; }

    public string? ContentType { get; }

    public string Text { get; }

    /// <summary>By series as written, e.g. <c>tromai_gateway_events_relayed_total{event="token"}</c>.</summary>
    public Dictionary<string, double> Series { get; } = new(StringComparer.Ordinal);

    /// <summary>By family name: counter, gauge, histogram.</summary>
    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);

    public static async Task<PrometheusScrape> GetAsync(HttpClient http, string path = "metrics")
    {
        using var response = await http.GetAsync(path);
        return new PrometheusScrape(response, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The value of one series; fails, showing the scrape, when it is missing.</summary>
    public double this[string series] =>
        Series.TryGetValue(series, out var value) ? value : throw new Xunit.Sdk.XunitException($"No series {series} in the scrape:\n{Text}");
}
