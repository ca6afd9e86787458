using System.Globalization;
using System.Text;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// The Prometheus text exposition format, version 0.0.4: names sanitised (<c>http.server.request.duration</c>
/// in seconds becomes <c>http_server_request_duration_seconds</c>), counters suffixed <c>_total</c>,
/// label values escaped, histogram buckets cumulative up to <c>+Inf</c>.
/// </summary>
internal static class PrometheusTextFormat
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string MetricName(string instrumentName, string? unit, MetricKind kind)
    {
        var name = Sanitize(instrumentName, allowColon: true);
        if (UnitSuffix(unit) is { } suffix && !name.EndsWith("_" + suffix, StringComparison.Ordinal))
        {
            name += "_" + suffix;
        }

        if (kind == MetricKind.Counter && !name.EndsWith("_total", StringComparison.Ordinal))
        {
            name += "_total";
        }

        return name;
    }

    /// <summary>
    /// The label text of a tag set, <c>a="1",b="2"</c>, sorted by name so that one series always
    /// reads the same. A measurement's tag wins over an instrument's or meter's tag of the same name.
    /// </summary>
    public static string Labels(KeyValuePair<string, object?>[] tags, KeyValuePair<string, object?>[] staticTags)
    {
        if (tags.Length == 0 && staticTags.Length == 0)
        {
            return "";
        }

        var labels = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags.Concat(staticTags))
        {
            labels.TryAdd(LabelName(tag.Key), LabelValue(tag.Value));
        }

        var text = new StringBuilder();
        foreach (var (name, value) in labels)
        {
            if (text.Length > 0)
            {
                text.Append(',');
            }

            text.Append(name).Append("=\"");
            AppendEscaped(text, value, escapeQuotes: true);
            text.Append('"');
        }

        return text.ToString();
    }

    /// <summary>Appends one metric family: HELP and TYPE once, then every series' samples.</summary>
    public static void AppendFamily(StringBuilder output, InstrumentAggregate aggregate, IReadOnlyList<InstrumentAggregate.Series> series)
    {
        var name = aggregate.Name;
        if (!string.IsNullOrEmpty(aggregate.Instrument.Description))
        {
            output.Append("# HELP ").Append(name).Append(' ');
            AppendEscaped(output, aggregate.Instrument.Description, escapeQuotes: false);
            output.Append('\n');
        }

        output.Append("# TYPE ").Append(name).Append(' ').Append(aggregate.Kind switch
        {
            MetricKind.Counter => "counter",
            MetricKind.Gauge => "gauge",
            _ => "histogram",
        }).Append('\n');

        foreach (var one in series)
        {
            if (aggregate.Kind != MetricKind.Histogram)
            {
                AppendSample(output, name, "", one.Labels, null, one.Value);
                continue;
            }

            var counts = one.BucketCounts();
            var bounds = aggregate.Bounds;
            long cumulative = 0;
            for (var i = 0; i < bounds.Length; i++)
            {
                cumulative += counts[i];
                AppendSample(output, name, "_bucket", one.Labels, FormatValue(bounds[i]), cumulative);
            }

            cumulative += counts[^1];
            AppendSample(output, name, "_bucket", one.Labels, "+Inf", cumulative);
            AppendSample(output, name, "_sum", one.Labels, null, one.Sum);
            AppendSample(output, name, "_count", one.Labels, null, cumulative); // from the same reads as the buckets, so +Inf == _count
        }
    }

    public static string FormatValue(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private static void AppendSample(StringBuilder output, string name, string suffix, string labels, string? le, double value)
    {
        output.Append(name).Append(suffix);
        if (labels.Length > 0 || le is not null)
        {
            output.Append('{').Append(labels);
            if (le is not null)
            {
                output.Append(labels.Length > 0 ? ",le=\"" : "le=\"").Append(le).Append('"');
            }

            output.Append('}');
        }

        output.Append(' ').Append(FormatValue(value)).Append('\n');
    }

    /// <summary>Prometheus names are <c>[a-zA-Z_:][a-zA-Z0-9_:]*</c> (no colon in label names); anything else becomes an underscore.</summary>
    private static string Sanitize(string name, bool allowColon)
    {
        if (name.Length == 0)
        {
            return "_";
        }

        var result = new StringBuilder(name.Length + 1);
        if (char.IsAsciiDigit(name[0]))
        {
            result.Append('_');
        }

        foreach (var c in name)
        {
            result.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':') ? c : '_');
        }

        return result.ToString();
    }

    private static string LabelName(string key) => Sanitize(key, allowColon: false);

    private static string LabelValue(object? value) => value switch
    {
        null => "",
        string text => text,
        bool flag => flag ? "true" : "false",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>UCUM units of OpenTelemetry's semantic conventions, as Prometheus suffixes; annotations such as <c>{request}</c> add none.</summary>
    private static string? UnitSuffix(string? unit) => unit switch
    {
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "min" => "minutes",
        "h" => "hours",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "bit" => "bits",
        "%" => "percent",
        _ => null,
    };

    /// <summary>Backslash and newline in HELP text and label values, plus the double quote in label values.</summary>
    private static void AppendEscaped(StringBuilder output, string text, bool escapeQuotes)
    {
        foreach (var c in text)
        {
            switch (c)
            {
                case '\\':
                    output.Append(@"\\");
                    break;
                case '\n':
                    output.Append(@"\n");
                    break;
                case '"' when escapeQuotes:
                    output.Append("\\\"");
                    break;
                default:
                    output.Append(c);
                    break;
            }
        }
    }
}
