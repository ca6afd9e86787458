using System.Security.Cryptography;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The ids of kept streams, which a client sends back to resume one. Whoever holds an id may read the
/// answer (with gateway authentication on, only its own principal), so it is unguessable like the
/// <c>gw-</c> ids (<see cref="SocketIOClientIds"/>): 128 random bits. The prefix lets a resume with an id
/// of the wrong shape be refused before any store is asked.
/// </summary>
internal static class StreamIds
{
    public const string Prefix = "st-";

    // Base64url of 16 bytes without padding.
    private const int RandomChars = 22;

    public static string New() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>True when <paramref name="id"/> has the shape of an id this gateway hands out.</summary>
    public static bool IsStreamId(string? id)
    {
        if (id is null || id.Length != Prefix.Length + RandomChars || !id.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in id.AsSpan(Prefix.Length))
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_')
            {
                return false;
            }
        }

        return true;
    }
}
