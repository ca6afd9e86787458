namespace TromAi.Gateway.Upstream;

/// <summary>How TROM.AI streams, and what it answered that says so: what <c>auto</c> logs with its choice (never an address).</summary>
internal readonly record struct StreamingModeEvidence(StreamingMode Mode, string Evidence);
