namespace TromAi.Gateway.Bridge;

/// <summary>An upstream event as its session received it: its name and its arguments.</summary>
internal readonly record struct CapturedEvent(string Name, object?[] Args);
