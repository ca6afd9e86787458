using System.Text.Json;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>A rendered Kubernetes object.</summary>
public sealed record Manifest(string Kind, string Name, JsonElement Json);
