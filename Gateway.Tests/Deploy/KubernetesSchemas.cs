using System.Text.Json;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>
/// Kubernetes objects checked against their API's schema, offline, by
/// <c>Gateway.Tests/manifest-validator/validate.mjs</c> (kubernetes-models, and
/// @kubernetes-models/gateway-api for the Gateway API): field types, required fields, enums and
/// formats such as quantities and durations, what an API server would refuse.
/// </summary>
internal static class KubernetesSchemas
{
    private static readonly JsonSerializerOptions ReportFormat = new(JsonSerializerDefaults.Web);

    public static string Directory => Path.Combine(Deploy.RepoRoot, "Gateway.Tests", "manifest-validator");

    /// <summary>One result per object, in the order given; an object is valid when its <see cref="Result.Errors"/> is empty.</summary>
    public static List<Result> Validate(IEnumerable<JsonElement> objects)
    {
        if (!System.IO.Directory.Exists(Path.Combine(Directory, "node_modules", "kubernetes-models")))
        {
            throw new InvalidOperationException($"The manifest validator's packages are not installed: run ./test.sh (or `npm ci` in {Directory}).");
        }

        var (exitCode, stdout, stderr) = Deploy.Run("node", ["validate.mjs"], JsonSerializer.Serialize(objects), Directory, [],
            notInstalled: "node is not installed. Run ./test.sh: it installs Node.js when node is missing.");
        Assert.True(exitCode is 0 or 1, $"validate.mjs failed ({exitCode}):\n{stderr}");
        var results = JsonSerializer.Deserialize<List<Result>>(stdout, ReportFormat)!;
        Assert.Equal(exitCode == 0, results.TrueForAll(result => result.Errors.Count == 0)); // its exit code and its report agree
        return results;
    }

    public sealed record Result(string? ApiVersion, string? Kind, string? Name, List<string> Errors)
    {
        public override string ToString() => $"{Kind}/{Name}: {(Errors.Count == 0 ? "valid" : string.Join("; ", Errors))}";
    }
}
