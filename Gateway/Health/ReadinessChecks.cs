using Microsoft.Extensions.Diagnostics.HealthChecks;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Scaleout;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Health;

/// <summary>Not ready while draining: the load balancer should stop sending new work here.</summary>
internal sealed class DrainCheck(GatewayDrain drain) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(drain.IsDraining ? HealthCheckResult.Unhealthy("draining") : HealthCheckResult.Healthy("accepting connections"));
}

/// <summary>
/// Ready while at least one TROM.AI replica answers HTTP at all (any status: a 404 still proves it
/// is up). Replicas are named by position, never by address: this answer is public.
/// </summary>
internal sealed class UpstreamCheck(IHttpClientFactory http, UpstreamDestinations destinations, UpstreamHeaderPolicy headers) : IHealthCheck
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var replicas = destinations.Replicas;
        var reachable = await Task.WhenAll(replicas.Select(replica => AnswersAsync(replica, cancellationToken)));
        var data = new Dictionary<string, object>();
        for (var i = 0; i < replicas.Count; i++)
        {
            data[$"replica-{i}"] = reachable[i] ? "reachable" : "unreachable";
        }

        return reachable.Any(r => r)
            ? HealthCheckResult.Healthy($"{reachable.Count(r => r)} of {replicas.Count} TROM.AI replica(s) reachable", data: data)
            : HealthCheckResult.Unhealthy("no TROM.AI replica reachable", data: data);
    }

    private async Task<bool> AnswersAsync(Uri replica, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, UpstreamUrls.Combine(replica, "api/v1/ping"));
            headers.Apply(request, UpstreamCaller.Gateway);
            using var response = await http.CreateClient(UpstreamHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or UpstreamTimeoutException)
        {
            return false;
        }
    }
}

/// <summary>
/// Degraded, not unready, while Redis is down: this instance still serves its own connections and
/// every REST call, so taking it out of the load balancer would only make things worse (when Redis
/// is down, it is down for every instance). Only lookups of other instances' sessions fail meanwhile,
/// with 503 and <c>Retry-After</c>.
/// </summary>
internal sealed class RedisCheck(RedisConnection redis) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(redis.IsConnected
            ? HealthCheckResult.Healthy("connected")
            : HealthCheckResult.Degraded("not connected; retrying. This instance serves its own connections; other instances' sessions cannot be looked up meanwhile."));
}
