namespace TromAi.Gateway.Tests.Deploy;

/// <summary>An environment variable of the gateway container: a value, or a reference to a Secret's key.</summary>
public readonly record struct EnvValue(string? Value, (string Name, string Key)? Secret);
