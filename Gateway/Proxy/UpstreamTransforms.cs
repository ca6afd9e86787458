using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using TromAi.Gateway.Upstream;
using Yarp.ReverseProxy.Transforms;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// What the proxy changes on the way, and only this: credentials, as <see cref="UpstreamHeaderPolicy"/>
/// decides for every call to TROM.AI; and CORS is the gateway's to answer (its allow-list), not
/// whatever TROM.AI would allow.
/// </summary>
internal static class UpstreamTransforms
{
    private static readonly string[] CorsHeaders =
    [
        HeaderNames.AccessControlAllowOrigin, HeaderNames.AccessControlAllowCredentials, HeaderNames.AccessControlAllowHeaders,
        HeaderNames.AccessControlAllowMethods, HeaderNames.AccessControlExposeHeaders, HeaderNames.AccessControlMaxAge,
    ];

    public static IReverseProxyBuilder AddGatewayTransforms(this IReverseProxyBuilder proxy)
    {
        return proxy.AddTransforms(transforms =>
        {
            var options = transforms.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
            var allowed = options.Cors.AllowedOrigins.ToHashSet(StringComparer.OrdinalIgnoreCase);
            if (options.Auth.Enabled)
            {
                transforms.AddQueryRemoveKey("access_token");
            }

            var policy = transforms.Services.GetRequiredService<UpstreamHeaderPolicy>();
            transforms.AddRequestTransform(context =>
            {
                policy.ApplyToForwarded(context.ProxyRequest, policy.CallerOf(context.HttpContext.Request));
                return ValueTask.CompletedTask;
            });

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
