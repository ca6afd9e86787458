using System.Text.Json;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Hosting;

namespace TromAi.Gateway.Bench.Reporting;

/// <summary>
/// A scenario's outcome: one markdown row in the shape every scenario shares (so rows from separate runs make one
/// table) and one JSON line with everything measured.
/// </summary>
/// <param name="TargetMet">Null when the issue sets no target for what this scenario measures or it could not be judged.</param>
internal sealed record ScenarioResult(
    string Scenario,
    string Setup,
    string Direct,
    string Bridged,
    string Comparison,
    string Target,
    bool? TargetMet,
    JsonObject Details)
{
    public const string Header = "| scenario | setup | direct | bridged | bridged vs direct | target | verdict |";

    public const string Separator = "|---|---|---|---|---|---|---|";

    public string Verdict => TargetMet switch
    {
        true => "met",
        false => "**missed**",
        null => "n/a",
    };

    public string ToMarkdownRow() => $"| {Scenario} | {Setup} | {Direct} | {Bridged} | {Comparison} | {Target} | {Verdict} |";

    public string ToJsonLine(BenchOptions options)
    {
        var json = new JsonObject
        {
            ["scenario"] = Scenario,
            ["date"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
            ["machine"] = new JsonObject
            {
                ["cores"] = ProcessMetrics.ProcessorCount,
                ["memoryGb"] = Math.Round(ProcessMetrics.TotalMemoryBytes / (1024.0 * 1024 * 1024), 1),
                ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
                ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
            },
            ["command"] = options.Command,
            ["target"] = Target,
            ["targetMet"] = TargetMet,
        };
        foreach (var (name, value) in Details)
        {
            json[name] = value?.DeepClone();
        }

        return json.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}
