using System.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The one place that decides what credentials and client headers reach TROM.AI, on every call the
/// gateway makes or forwards (proxy, SSE relay, <c>Predict</c>, abort, probes). The rule: TROM.AI
/// gets the caller's own TROM.AI key when the caller brings one, else <c>Gateway:Upstream:ApiKey</c>
/// when it is set, else nothing; a credential meant for the gateway never goes further.
/// </summary>
internal sealed class UpstreamHeaderPolicy(IOptions<GatewayOptions> options)
{
    /// <summary>Where a client puts its TROM.AI key when <c>Authorization</c> is the gateway's (gateway authentication on); also accepted with it off.</summary>
    public const string TromAiKeyHeader = "X-TromAi-Key";

    /// <summary>The header of a gateway API key (<c>Gateway:Auth:ApiKeys</c>).</summary>
    public const string GatewayKeyHeader = "X-Api-Key";

    private const string BearerPrefix = "Bearer ";

    /// <summary>The longest TROM.AI key a client may hand the gateway (TROM.AI's own are a few dozen).</summary>
    public const int MaxKeyLength = 1024;

    /// <summary>Whether <paramref name="key"/> can travel as a bearer token: visible ASCII only, so it cannot break a header.</summary>
    public static bool IsValidKey(string key) =>
        key.Length is > 0 and <= MaxKeyLength && !key.AsSpan().ContainsAnyExceptInRange('!', '~');

    /// <summary>
    /// The caller behind <paramref name="request"/>: its TROM.AI key is <c>X-TromAi-Key</c>, or, with
    /// gateway authentication off, its <c>Authorization: Bearer</c> as TROM.AI's own clients send it
    /// (on the hub's WebSocket and SSE requests, where browsers cannot set headers, the
    /// <c>access_token</c> query that SignalR clients send instead).
    /// </summary>
    public UpstreamCaller CallerOf(HttpRequest request)
    {
        var key = NonEmpty(request.Headers[TromAiKeyHeader]);
        if (key is null && !options.Value.Auth.Enabled)
        {
            var authorization = request.Headers.Authorization.ToString();
            key = authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)
                ? NonEmpty(authorization[BearerPrefix.Length..].Trim())
                : null;
        }

        return new UpstreamCaller(key, NonEmpty(request.Headers.Origin), request.HttpContext.Connection.RemoteIpAddress?.ToString());
    }

    /// <summary>A hub connection's caller, from the request that opened it.</summary>
    public UpstreamCaller CallerOfConnection(HttpRequest request, bool browserTransport)
    {
        var caller = CallerOf(request);
        if (caller.TromAiKey is null && browserTransport && !options.Value.Auth.Enabled)
        {
            caller = caller with { TromAiKey = NonEmpty(request.Query["access_token"]) };
        }

        return caller;
    }

    /// <summary>
    /// Sets what TROM.AI may see of <paramref name="caller"/> on a request the gateway makes itself.
    /// Every other client header stays behind.
    /// </summary>
    public void Apply(HttpRequestMessage request, UpstreamCaller caller)
    {
        ApplyCredentials(request, caller);
        if (caller.Origin is not null)
        {
            request.Headers.TryAddWithoutValidation("Origin", caller.Origin);
        }

        if (caller.ClientAddress is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-For", caller.ClientAddress);
        }
    }

    /// <summary>
    /// On a proxied request, which carries the client's headers: removes every credential of the
    /// client's (gateway key, JWT, its TROM.AI key header) and sets the one TROM.AI gets.
    /// </summary>
    public void ApplyToForwarded(HttpRequestMessage request, UpstreamCaller caller)
    {
        request.Headers.Remove(TromAiKeyHeader);
        if (options.Value.Auth.Enabled)
        {
            request.Headers.Remove(GatewayKeyHeader);
        }

        ApplyCredentials(request, caller);
    }

    private void ApplyCredentials(HttpRequestMessage request, UpstreamCaller caller)
    {
        var key = caller.TromAiKey ?? options.Value.Upstream.ApiKey;
        request.Headers.Authorization = string.IsNullOrEmpty(key) ? null : new AuthenticationHeaderValue("Bearer", key);
    }

    private static string? NonEmpty(StringValues values) => StringValues.IsNullOrEmpty(values) ? null : NonEmpty(values.ToString());

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
