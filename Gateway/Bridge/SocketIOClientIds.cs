using System.Security.Cryptography;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The ids the hub hands out as <c>socketIOClientId</c>. Not the SignalR connection id: that one names
/// the connection to SignalR itself (groups, client results, logs), and a REST body should not carry
/// it. 128 random bits make an id unguessable, like TROM.AI's own socket ids (base64id, 120 bits);
/// the prefix lets any instance tell a gateway id from a plain Socket.IO client's even when it cannot
/// look it up, so it can answer "retry" instead of forwarding it to where no event would arrive.
/// </summary>
internal static class SocketIOClientIds
{
    public const string Prefix = "gw-";

    // Base64url of 16 bytes without padding.
    private const int RandomChars = 22;

    public static string New() => Prefix + Base64Url(RandomNumberGenerator.GetBytes(16));

    /// <summary>True when <paramref name="id"/> has the shape of an id this gateway hands out.</summary>
    public static bool IsGatewayId(ReadOnlySpan<char> id)
    {
        if (id.Length != Prefix.Length + RandomChars || !id.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in id[Prefix.Length..])
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_')
            {
                return false;
            }
        }

        return true;
    }

    private static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
