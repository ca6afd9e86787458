using System.Security.Claims;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// Who a hub connection belongs to, as a string that travels in the session directory: with gateway
/// authentication on, a REST prediction may address only a connection of the same principal.
/// </summary>
internal static class ConnectionOwner
{
    /// <summary>
    /// The authentication type and subject of <paramref name="user"/> (<c>sub</c>, else the name
    /// identifier, else the name); null for an anonymous caller, which owns nothing.
    /// </summary>
    public static string? Of(ClaimsPrincipal? user)
    {
        if (user?.Identity is not { IsAuthenticated: true } identity)
        {
            return null;
        }

        var subject = user.FindFirst("sub")?.Value ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? identity.Name;
        return subject is null ? null : $"{identity.AuthenticationType}:{subject}";
    }
}
