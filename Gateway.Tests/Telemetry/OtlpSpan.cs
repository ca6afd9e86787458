using System.Globalization;
using Google.Protobuf;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>
/// One span of an OTLP trace export, as a trace backend shows it: ids in hex, name, kind, the
/// instrumentation scope that made it, and its attributes as text. Read from the wire format by
/// field number (opentelemetry-proto's trace.proto and common.proto), so the tests need no generated classes.
/// </summary>
internal sealed record OtlpSpan(string TraceId, string SpanId, string ParentSpanId, string Name, OtlpSpan.SpanKind Kind, string Scope, IReadOnlyDictionary<string, string> Attributes)
{
    public enum SpanKind
    {
        Unspecified,
        Internal,
        Server,
        Client,
        Producer,
        Consumer,
    }

    /// <summary>Every span of an <c>ExportTraceServiceRequest</c>.</summary>
    public static IReadOnlyList<OtlpSpan> Read(byte[] exportTraceServiceRequest)
    {
        var spans = new List<OtlpSpan>();
        foreach (var resourceSpans in Fields(exportTraceServiceRequest, 1))
        {
            foreach (var scopeSpans in Fields(resourceSpans, 2))
            {
                var scope = Fields(scopeSpans, 1).Select(s => Text(Fields(s, 1).FirstOrDefault())).FirstOrDefault() ?? "";
                spans.AddRange(Fields(scopeSpans, 2).Select(span => ReadSpan(span, scope)));
            }
        }

        return spans;
    }

    private static OtlpSpan ReadSpan(byte[] span, string scope)
    {
        string traceId = "", spanId = "", parentSpanId = "", name = "";
        var kind = SpanKind.Unspecified;
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        var input = new CodedInputStream(span);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: traceId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 2: spanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 4: parentSpanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 5: name = input.ReadString(); break;
                case 6: kind = (SpanKind)input.ReadEnum(); break;
                case 9:
                    var keyValue = input.ReadBytes().ToByteArray();
                    attributes[Text(Fields(keyValue, 1).FirstOrDefault())] = AnyValue(Fields(keyValue, 2).FirstOrDefault());
                    break;
                default: input.SkipLastField(); break;
            }
        }

        return new OtlpSpan(traceId, spanId, parentSpanId, name, kind, scope, attributes);
    }

    /// <summary>The contents of every length-delimited field <paramref name="number"/> of a message.</summary>
    private static List<byte[]> Fields(byte[] message, int number)
    {
        var fields = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                fields.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }

        return fields;
    }

    private static string Text(byte[]? utf8) => utf8 is null ? "" : System.Text.Encoding.UTF8.GetString(utf8);

    /// <summary>An <c>AnyValue</c>'s string, bool, int or double, as text.</summary>
    private static string AnyValue(byte[]? value)
    {
        var input = new CodedInputStream(value ?? []);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: return input.ReadString();
                case 2: return input.ReadBool() ? "true" : "false";
                case 3: return input.ReadInt64().ToString(CultureInfo.InvariantCulture);
                case 4: return input.ReadDouble().ToString("R", CultureInfo.InvariantCulture);
                default: input.SkipLastField(); break;
            }
        }

        return "";
    }
}
