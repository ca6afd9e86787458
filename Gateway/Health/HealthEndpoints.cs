using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Scaleout;

namespace TromAi.Gateway.Health;

internal static class HealthEndpoints
{
    public const string Liveness = "/healthz";
    public const string Readiness = "/readyz";
    private const string ReadyTag = "ready";

    public static IServiceCollection AddGatewayHealth(this IServiceCollection services, bool redis)
    {
        services.AddSingleton<GatewayDrain>();
        var checks = services.AddHealthChecks()
            .AddCheck<DrainCheck>("drain", tags: [ReadyTag])
            .AddCheck<UpstreamCheck>("upstream", tags: [ReadyTag]);
        if (redis)
        {
            checks.AddCheck<RedisCheck>("redis", tags: [ReadyTag]);
        }

        return services;
    }

    /// <summary><c>/healthz</c>: the process is alive. <c>/readyz</c>: it can take work (upstream reachable, not draining); Redis down makes it Degraded, still 200.</summary>
    public static void MapGatewayHealth(this IEndpointRouteBuilder endpoints)
    {
        // Probes come from the orchestrator, which holds no gateway credentials.
        endpoints.MapHealthChecks(Liveness, new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync }).AllowAnonymous();
        endpoints.MapHealthChecks(Readiness, new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync }).AllowAnonymous();
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsJsonAsync(new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(
                entry => entry.Key,
                entry => new { status = entry.Value.Status.ToString(), detail = entry.Value.Description, data = entry.Value.Data.Count > 0 ? entry.Value.Data : null }),
        }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull });
    }
}
