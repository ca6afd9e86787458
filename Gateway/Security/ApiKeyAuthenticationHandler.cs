using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Security;

/// <summary>
/// Accepts one of <c>Gateway:Auth:ApiKeys</c>, from <c>X-Api-Key</c>, <c>Authorization: Bearer</c>
/// (what SignalR clients send with <c>accessTokenFactory</c>), or, on the hub's WebSocket and SSE
/// requests only, the <c>access_token</c> query string (what browsers send there, unable to set headers).
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemes, ILoggerFactory loggers, UrlEncoder encoder, IOptions<GatewayOptions> gateway)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemes, loggers, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = Upstream.UpstreamHeaderPolicy.GatewayKeyHeader;
    public const string AccessTokenQuery = "access_token";

    private readonly byte[][] _keys = [.. gateway.Value.Auth.ApiKeys.Select(key => SHA256.HashData(Encoding.UTF8.GetBytes(key)))];

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = PresentedKey(Request);
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        // Compare digests in fixed time: no key leaks through how fast a wrong one is refused.
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        foreach (var key in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, key))
            {
                // Each key is its own principal (the hub connections it opens are its own), named by a
                // prefix of its digest so that neither logs nor the session directory hold the key.
                var subject = "key-" + Convert.ToHexStringLower(key, 0, 8);
                var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "api-key"), new Claim("sub", subject)], SchemeName);
                return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
            }
        }

        return Task.FromResult(AuthenticateResult.Fail("Invalid API key."));
    }

    internal static string? PresentedKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue(HeaderName, out var header) && header.Count > 0)
        {
            return header[0];
        }

        if (BearerToken(request) is { } bearer)
        {
            return bearer;
        }

        return AccessTokenFromQuery(request);
    }

    /// <summary>
    /// The <c>access_token</c> query, only on the hub requests where a browser cannot send headers
    /// (its WebSocket and SSE stream): anywhere else a credential in the URL would only end up in
    /// logs and histories, and SignalR's clients send headers there.
    /// </summary>
    internal static string? AccessTokenFromQuery(HttpRequest request) =>
        RoutedRequest.IsBrowserTransport(request.HttpContext) && request.Query.TryGetValue(AccessTokenQuery, out var query) && query.Count > 0
            ? query[0]
            : null;

    internal static string? BearerToken(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : null;
    }
}
