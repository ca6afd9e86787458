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
/// response body read, straight to the upstream and through the gateway's proxy. The two paths alternate request
/// by request (each worker swaps which goes first), so drift in the machine's load falls on both alike.
/// </summary>
internal static class RestScenario
{
    private const double P50RatioTarget = 1.1;
    // The proxy's code paths reach their optimised JIT tier only after thousands of requests (tiered PGO).
    private const int WarmupRequests = 2000;
    private const string Path = "api/v1/prediction/echo-question";

    public static async Task<ScenarioResult> RunAsync(BenchEnvironment environment, BenchOptions options, CancellationToken cancellationToken)
    {
        var requests = options.Requests;
        var concurrency = options.Concurrency ?? 1;
        using var direct = Client(environment.Upstream.BaseUrl);
        using var bridged = Client(environment.Gateway.BaseUrl);

        await RunAsync(direct, bridged, Math.Min(WarmupRequests, requests), concurrency, cancellationToken);
        environment.Log.WriteLine($"# rest: {requests} requests per path, {concurrency} in flight per path");
        var cpuBefore = environment.SampleCpu();
        var (directTimes, bridgedTimes, failures) = await RunAsync(direct, bridged, requests, concurrency, cancellationToken);
        var cpu = CpuUse.Between(cpuBefore, environment.SampleCpu());

        var d = LatencySummary.Of(directTimes);
        var b = LatencySummary.Of(bridgedTimes);
        var ratio = b.P50 / d.P50;
        // Both paths' requests fall in the window, but only bridged ones reach the gateway.
        var gatewayCpuPerRequestUs = cpu.Gateway is { } gatewayCpu ? gatewayCpu.TotalMicroseconds / requests : double.NaN;
        return new ScenarioResult(
            "rest",
            Invariant($"{requests} POST /{Path} per path, {concurrency} in flight, alternating"),
            Invariant($"p50 {Ms(d.P50)} · p99 {Ms(d.P99)} ms"),
            Invariant($"p50 {Ms(b.P50)} · p99 {Ms(b.P99)} ms; gateway {Count(gatewayCpuPerRequestUs)} µs CPU/request"),
            Invariant($"p50 ratio {Ratio(ratio)}, p99 ratio {Ratio(b.P99 / d.P99)} ({SignedMs(b.P50 - d.P50)} · {SignedMs(b.P99 - d.P99)} ms)"),
            Invariant($"p50 ratio ≤ {P50RatioTarget:0.0#}"),
            failures == 0 && ratio <= P50RatioTarget,
            new JsonObject
            {
                ["requests"] = requests,
                ["concurrency"] = concurrency,
                ["direct"] = d.ToJson(),
                ["bridged"] = b.ToJson(),
                ["p50Ratio"] = LatencySummary.Round(ratio),
                ["p99Ratio"] = LatencySummary.Round(b.P99 / d.P99),
                ["gatewayCpuMicrosecondsPerRequest"] = LatencySummary.Round(gatewayCpuPerRequestUs),
                ["failures"] = failures,
                ["cpu"] = cpu.ToJson(),
            });
    }

    private static async Task<(List<TimeSpan> Direct, List<TimeSpan> Bridged, int Failures)> RunAsync(
        HttpClient direct,
        HttpClient bridged,
        int requests,
        int concurrency,
        CancellationToken cancellationToken)
    {
        var directTimes = new List<TimeSpan>(requests);
        var bridgedTimes = new List<TimeSpan>(requests);
        var failures = 0;
        var next = -1;
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            workers[w] = Task.Run(
                async () =>
                {
                    for (var i = Interlocked.Increment(ref next); i < requests; i = Interlocked.Increment(ref next))
                    {
                        var directFirst = i % 2 == 0;
                        var first = await TimeAsync(directFirst ? direct : bridged, cancellationToken);
                        var second = await TimeAsync(directFirst ? bridged : direct, cancellationToken);
                        lock (workers)
                        {
                            Record(directFirst ? first : second, directTimes);
                            Record(directFirst ? second : first, bridgedTimes);
                        }
                    }
                },
                cancellationToken);
        }

        await Task.WhenAll(workers);
        return (directTimes, bridgedTimes, failures);

        void Record(TimeSpan? time, List<TimeSpan> into)
        {
            if (time is { } ok)
            {
                into.Add(ok);
            }
            else
            {
                failures++;
            }
        }
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
