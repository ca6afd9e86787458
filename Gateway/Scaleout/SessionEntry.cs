using System.Text.Json;
using System.Text.Json.Serialization;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// A hub connection as the shared session directory stores it: where to find it, and which
/// instance owns it (the entry counts only while that instance is alive).
/// </summary>
internal sealed record SessionEntry(string Connection, string? Owner, string? Socket, Uri? Destination, string Instance)
{
    public static byte[] Write(BridgedConnection connection, string instance) =>
        JsonSerializer.SerializeToUtf8Bytes(
            new SessionEntry(connection.ConnectionId, connection.Owner, connection.Session?.SocketId, connection.Session?.Destination, instance),
            SessionEntryJson.Default.SessionEntry);

    /// <summary>The entry, or null when the bytes are not one (written by another version of the gateway, say).</summary>
    public static SessionEntry? Read(byte[] bytes)
    {
        try
        {
            var entry = JsonSerializer.Deserialize(bytes, SessionEntryJson.Default.SessionEntry);
            return string.IsNullOrEmpty(entry?.Connection) || string.IsNullOrEmpty(entry.Instance) ? null : entry;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public SessionLocation Location => new(Connection, Owner, Socket, Destination, Instance);
}

[JsonSerializable(typeof(SessionEntry))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class SessionEntryJson : JsonSerializerContext;
