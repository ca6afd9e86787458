namespace TromAi.Gateway.Bench.Clients;

/// <summary>How bridged sessions connect: the hub protocol (<c>--protocol</c>) and whether they negotiate (<c>--negotiate</c>).</summary>
internal sealed record BridgedClient(string Protocol = BridgedClient.Json, bool Negotiate = false)
{
    public const string Json = "json";
    public const string MessagePack = "messagepack";

    public static readonly IReadOnlyList<string> Protocols = [Json, MessagePack];
}
