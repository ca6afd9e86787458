using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Yarp.ReverseProxy.Transforms;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// What the proxy changes on the way, and only this: with gateway authentication on, the client's
/// credentials are the gateway's and stay here, and TROM.AI gets its own key from configuration;
/// and CORS is the gateway's to answer (its allow-list), not whatever TROM.AI would allow.
/// </summary>
internal static class UpstreamTransforms
{
    private static readonly string[] CorsHeaders =
    [
        HeaderNames.AccessControlAllowOrigin, HeaderNames.AccessControlAllowCredentials, HeaderNames.AccessControlAllowHeaders,
        HeaderNames.AccessControlAllowMethods, HeaderNames.AccessControlExposeHeaders, HeaderNames.AccessControlMaxAge,
    ];

    public static IReverseProxyBuilder AddGatewayTransforms(this IReverseProxyBuilder proxy, GatewayOptions snapshot)
    {
        var allowed = snapshot.Cors.AllowedOrigins.ToHashSet(StringComparer.OrdinalIgnoreCase);
        return proxy.AddTransforms(transforms =>
        {
            if (snapshot.Auth.Enabled)
            {
                transforms.AddRequestHeaderRemove(Security.ApiKeyAuthenticationHandler.HeaderName);
                transforms.AddQueryRemoveKey("access_token");
                transforms.AddRequestTransform(context =>
                {
                    context.ProxyRequest.Headers.Authorization = null;
                    if (!string.IsNullOrEmpty(snapshot.Upstream.ApiKey))
                    {
                        context.ProxyRequest.Headers.Authorization = new("Bearer", snapshot.Upstream.ApiKey);
                    }

                    return ValueTask.CompletedTask;
                });
            }

            transforms.AddResponseTransform(context =>
            {
                var response = context.HttpContext.Response;
                foreach (var header in CorsHeaders)
                {
                    response.Headers.Remove(header);
                }

                var origin = context.HttpContext.Request.Headers.Origin;
                if (!StringValues.IsNullOrEmpty(origin) && allowed.Contains(origin.ToString()))
                {
                    response.Headers.AccessControlAllowOrigin = origin;
                    response.Headers.AccessControlAllowCredentials = "true";
                    response.Headers.Append(HeaderNames.Vary, HeaderNames.Origin);
                }

                return ValueTask.CompletedTask;
            });
        });
    }
}
