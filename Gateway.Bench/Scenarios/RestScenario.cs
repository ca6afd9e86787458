using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Streams;
using static TromAi.Gateway.Bench.Reporting.Format;

namespace TromAi.Gateway.Bench.Scenarios;

/// <summary>
/// A non-streaming prediction (<c>echo-question</c>, no <c>socketIOClientId</c>) round trip, request sent to
/// response body read, straight to the upstream, through the gateway's proxy and, when it is installed, through
/// nginx in front of the same upstream (<see cref="NginxProxy"/>): what a well-known proxy adds is the yardstick for
/// what the gateway adds. The paths take turns request by request.
/// </summary>
internal static class RestScenario
{
    // Issue 12: the gateway may add at most this much more than nginx in front of the same upstream.
    private const double NginxMarginMs = 0.05;
    // The proxy's code paths reach their optimised JIT tier only after thousands of requests (tiered PGO).
    private const int WarmupRequests = 2000;
    private const string Path = "api/v1/prediction/echo-question";

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var requests = options.Requests;
        var concurrency = options.Concurrency ?? 1;
        await using var nginx = await NginxProxy.StartAsync(environment.Upstream.BaseUrl, options.Nginx, cancellationToken);
        using var direct = Client(environment.Upstream.BaseUrl);
        using var bridged = Client(environment.Gateway.BaseUrl);
        using var proxied = nginx is null ? null : Client(nginx.BaseUrl);
        HttpClient[] paths = proxied is null ? [direct, bridged] : [direct, bridged, proxied];

        await RunAsync(paths, Math.Min(WarmupRequests, requests), concurrency, cancellationToken);
        environment.Log.WriteLine($"# rest: {requests} requests per path, {concurrency} in flight per path; nginx {(nginx is null ? "not installed" : $"at {nginx.BaseUrl} (pid {nginx.ProcessId})")}");
        var cpuBefore = environment.SampleCpu();
        var nginxCpuBefore = nginx?.CpuTime();
        var (times, failures) = await RunAsync(paths, requests, concurrency, cancellationToken);
        var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());
        var nginxCpuPerRequestUs = nginx is null ? double.NaN : (nginx.CpuTime() - nginxCpuBefore!.Value).TotalMicroseconds / requests;

        var d = LatencySummary.Of(times[0]);
        var b = LatencySummary.Of(times[1]);
        var n = proxied is null ? (LatencySummary?)null : LatencySummary.Of(times[2]);
        var ratio = b.P50 / d.P50;
        var addedP50 = b.P50 - d.P50;
        // Both paths' requests fall in the window, but only bridged ones reach the gateway.
        var gatewayCpuPerRequestUs = cpu.Gateway is { } gatewayCpu ? gatewayCpu.TotalMicroseconds / requests : double.NaN;
        var nginxCell = n is { } nginxTimes
            ? Invariant($"; nginx p50 {Ms(nginxTimes.P50)} · p99 {Ms(nginxTimes.P99)} ms ({SignedMs(nginxTimes.P50 - d.P50)} · {SignedMs(nginxTimes.P99 - d.P99)} ms over direct, {Count(nginxCpuPerRequestUs)} µs CPU/request)")
            : "; nginx not installed";
        return new ScenarioResult(
            "rest",
            Invariant($"{requests} POST /{Path} per path ({(n is null ? "direct, bridged" : "direct, bridged, nginx")}), {concurrency} in flight, rotating"),
            Invariant($"p50 {Ms(d.P50)} · p99 {Ms(d.P99)} ms"),
            Invariant($"p50 {Ms(b.P50)} · p99 {Ms(b.P99)} ms; gateway {Count(gatewayCpuPerRequestUs)} µs CPU/request"),
            Invariant($"p50 ratio {Ratio(ratio)}, p99 ratio {Ratio(b.P99 / d.P99)} ({SignedMs(addedP50)} · {SignedMs(b.P99 - d.P99)} ms){nginxCell}"),
            n is null
                ? Invariant($"added p50 ≤ nginx's + {NginxMarginMs:0.00} ms (nginx not installed: not judged)")
                : Invariant($"added p50 ≤ nginx's + {NginxMarginMs:0.00} ms"),
            n is { } judged ? failures == 0 && addedP50 <= judged.P50 - d.P50 + NginxMarginMs : null,
            new JsonObject
            {
                ["requests"] = requests,
                ["concurrency"] = concurrency,
                ["direct"] = d.ToJson(),
                ["bridged"] = b.ToJson(),
                ["nginx"] = n is { } proxiedTimes
                    ? new JsonObject
                    {
                        ["latency"] = proxiedTimes.ToJson(),
                        ["addedP50Ms"] = LatencySummary.Round(proxiedTimes.P50 - d.P50),
                        ["cpuMicrosecondsPerRequest"] = LatencySummary.Round(nginxCpuPerRequestUs),
                    }
                    : new JsonObject { ["installed"] = false, ["note"] = "nginx not installed" },
                ["addedP50Ms"] = LatencySummary.Round(addedP50),
                ["p50Ratio"] = LatencySummary.Round(ratio),
                ["p99Ratio"] = LatencySummary.Round(b.P99 / d.P99),
                ["gatewayCpuMicrosecondsPerRequest"] = LatencySummary.Round(gatewayCpuPerRequestUs),
                ["failures"] = failures,
                ["cpu"] = cpu.ToJson(),
            });
    }

    /// <summary>Each worker sends one request per path in turn, starting with a different path each time, so drift in the machine's load falls on all alike.</summary>
    private static async Task<(List<TimeSpan>[] Times, int Failures)> RunAsync(HttpClient[] paths, int requests, int concurrency, CancellationToken cancellationToken)
    {
        var times = Array.ConvertAll(paths, _ => new List<TimeSpan>(requests));
        var failures = 0;
        var next = -1;
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            workers[w] = Task.Run(
                async () =>
                {
                    var measured = new TimeSpan?[paths.Length];
                    for (var i = Interlocked.Increment(ref next); i < requests; i = Interlocked.Increment(ref next))
                    {
                        for (var k = 0; k < paths.Length; k++)
                        {
                            var path = (i + k) % paths.Length;
                            measured[path] = await TimeAsync(paths[path], cancellationToken);
                        }

                        lock (workers)
                        {
                            for (var path = 0; path < paths.Length; path++)
                            {
                                if (measured[path] is { } ok)
                                {
                                    times[path].Add(ok);
                                }
                                else
                                {
                                    failures++;
                                }
                            }
                        }
                    }
                },
                cancellationToken);
        }

        await Task.WhenAll(workers);
        return (times, failures);
    }

    /// <returns>The round trip, or null if the answer was not a 200 with the question echoed.</returns>
    private static async Task<TimeSpan?> TimeAsync(HttpClient client, CancellationToken cancellationToken)
    {
        var begun = Stopwatch.GetTimestamp();
        using var content = new StringContent("""{"question":"ping"}""", Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(Path, content, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        var elapsed = Stopwatch.GetElapsedTime(begun);
        return response.StatusCode == HttpStatusCode.OK && body.Contains("\"text\":\"ping\"", StringComparison.Ordinal) ? elapsed : null;
    }

    private static HttpClient Client(Uri baseUrl) => new(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
    {
        BaseAddress = baseUrl,
        Timeout = TimeSpan.FromSeconds(30),
    };
}
