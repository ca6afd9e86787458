namespace TromAi.Gateway.Upstream.SocketIOWire;

/// <summary>
/// TROM.AI's event names (tromai-protocol.md, both eras) as interned strings, looked up from the
/// UTF-8 bytes of a frame: a known name costs no allocation, so a token costs none for its name.
/// </summary>
internal static class SocketIOEventNames
{
    // Most frequent first: a stream is mostly tokens.
    private static readonly (byte[] Utf8, string Name)[] Known = Build(
        "token", "start", "end", "sourceDocuments", "usedTools", "agentReasoning", "nextAgent", "tool",
        "fileAnnotations", "abort", "action", "calledTools", "nextAgentFlow", "agentFlowExecutedData",
        "agentFlowEvent", "thinking", "artifacts", "metadata", "usageMetadata", "error",
        "tts_start", "tts_data", "tts_end", "tts_abort");

    /// <summary>The interned name for <paramref name="utf8"/>, or null when it is not a known one.</summary>
    public static string? Find(ReadOnlySpan<byte> utf8)
    {
        foreach (var (bytes, name) in Known)
        {
            if (utf8.SequenceEqual(bytes))
            {
                return name;
            }
        }

        return null;
    }

    private static (byte[], string)[] Build(params string[] names) =>
        Array.ConvertAll(names, name => (System.Text.Encoding.UTF8.GetBytes(name), string.Intern(name)));
}
