using TromAi.Gateway.Bench.Clients;
using TromAi.Gateway.Bench.Streams;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>
/// The upstream and the gateway of one scenario run, started by the bench or given by URL, and the clients that
/// reach them on each path. Both paths always share this one upstream.
/// </summary>
internal sealed class BenchEnvironment : IAsyncDisposable
{
    /// <summary>As long as the gateway lets a connection wait for its upstream session (Gateway:Upstream:ConnectTimeout).</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    private readonly BenchOptions _options;

    private BenchEnvironment(BenchOptions options, UpstreamServer upstream, GatewayServer gateway, TextWriter log)
    {
        _options = options;
        Upstream = upstream;
        Gateway = gateway;
        Log = log;
        DirectPredictions = StreamRunner.CreateClient(upstream.BaseUrl);
        BridgedPredictions = StreamRunner.CreateClient(gateway.BaseUrl);
    }

    public UpstreamServer Upstream { get; }

    public GatewayServer Gateway { get; private set; }

    /// <summary>Progress, for a human watching a long run; never parsed.</summary>
    public TextWriter Log { get; }

    public HttpClient DirectPredictions { get; }

    public HttpClient BridgedPredictions { get; private set; }

    public static async Task<BenchEnvironment> StartAsync(BenchOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var upstream = options.Upstream is { } upstreamUrl ? UpstreamServer.Attach(upstreamUrl) : await UpstreamServer.StartAsync(cancellationToken);
        try
        {
            var gateway = await StartGatewayAsync(options, upstream, cancellationToken);
            log.WriteLine($"# upstream {upstream.BaseUrl} (pid {upstream.ProcessId?.ToString() ?? "n/a"}), gateway {gateway.BaseUrl} (pid {gateway.ProcessId?.ToString() ?? "n/a"})");
            var clock = await upstream.MeasureClockOffsetAsync(cancellationToken);
            BenchClock.UpstreamOffsetMs = clock.OffsetMs;
            log.WriteLine($"# upstream's stamp clock: {clock.OffsetMs:+0.000;-0.000} ms from the bench's (round trip {clock.RoundTripMs:0.000} ms); latencies are corrected by it");
            return new BenchEnvironment(options, upstream, gateway, log);
        }
        catch
        {
            await upstream.DisposeAsync();
            throw;
        }
    }

    private static async Task<GatewayServer> StartGatewayAsync(BenchOptions options, UpstreamServer upstream, CancellationToken cancellationToken) =>
        options.Gateway is { } gatewayUrl
            ? GatewayServer.Attach(gatewayUrl, options.GatewayPid)
            : await GatewayServer.StartAsync(upstream.BaseUrl, GatewayEnvironmentOf(options), cancellationToken);

    /// <summary>
    /// memory and capacity tell the bridged sessions' upstream sockets by counting the upstream's, so the gateway they
    /// start opens no warm sockets (Gateway:Upstream:WarmSockets: a fixed few, not per session); a --gateway-env value wins.
    /// </summary>
    private static IReadOnlyDictionary<string, string> GatewayEnvironmentOf(BenchOptions options)
    {
        const string warmSockets = "Gateway__Upstream__WarmSockets";
        if (options.Scenario is not ("memory" or "capacity") || options.GatewayEnvironment.ContainsKey(warmSockets))
        {
            return options.GatewayEnvironment;
        }

        return new Dictionary<string, string>(options.GatewayEnvironment) { [warmSockets] = "0" };
    }

    /// <summary>Replaces a gateway the bench started with a fresh process (the memory scenario measures each size from scratch).</summary>
    public async Task RestartGatewayAsync(CancellationToken cancellationToken)
    {
        if (!Gateway.IsOwned)
        {
            throw new InvalidOperationException("Only a gateway the bench started can be restarted.");
        }

        await Gateway.DisposeAsync();
        BridgedPredictions.Dispose();
        Gateway = await StartGatewayAsync(_options, Upstream, cancellationToken);
        BridgedPredictions = StreamRunner.CreateClient(Gateway.BaseUrl);
    }

    /// <summary>nginx in front of the upstream, once <see cref="StartNginxAsync"/> has started it.</summary>
    public NginxProxy? Nginx { get; private set; }

    /// <summary>Starts nginx for the <see cref="BenchPath.Nginx"/> path, once; null when it is not installed or left out (<c>--nginx none</c>).</summary>
    public async Task<NginxProxy?> StartNginxAsync(CancellationToken cancellationToken)
    {
        if (Nginx is null && await NginxProxy.StartAsync(Upstream.BaseUrl, _options.Nginx, cancellationToken) is { } started)
        {
            Nginx = started;
            Log.WriteLine($"# nginx at {started.BaseUrl} (pid {started.ProcessId})");
        }

        return Nginx;
    }

    public HttpClient PredictionsFor(BenchPath path) => path == BenchPath.Bridged ? BridgedPredictions : DirectPredictions;

    public async Task<BenchSession> ConnectAsync(BenchPath path, CancellationToken cancellationToken) => path switch
    {
        BenchPath.Direct => await DirectSession.ConnectAsync(Upstream.BaseUrl, ConnectTimeout, cancellationToken),
        BenchPath.Nginx => await DirectSession.ConnectAsync(
            (Nginx ?? throw new InvalidOperationException("nginx was not started.")).BaseUrl, ConnectTimeout, cancellationToken),
        _ => await BridgedSession.ConnectAsync(Gateway.HubUrl, _options.Client, cancellationToken),
    };

    /// <summary>Opens <paramref name="count"/> sessions, at most <paramref name="concurrency"/> connecting at once; all or none.</summary>
    public async Task<List<BenchSession>> ConnectManyAsync(BenchPath path, int count, int concurrency, CancellationToken cancellationToken)
    {
        var sessions = new BenchSession?[count];
        try
        {
            await Parallel.ForAsync(
                0,
                count,
                new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken },
                async (i, token) => sessions[i] = await ConnectAsync(path, token));
        }
        catch
        {
            await DisposeAllAsync(sessions);
            throw;
        }

        return [.. sessions.Select(session => session!)];
    }

    public static Task DisposeAllAsync(IEnumerable<BenchSession?> sessions) =>
        Parallel.ForEachAsync(sessions, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (session, _) =>
        {
            if (session is not null)
            {
                await session.DisposeAsync();
            }
        });

    public CpuSample SampleCpu() => CpuSample.Take(Gateway.ProcessId, Upstream.ProcessId);

    public async ValueTask DisposeAsync()
    {
        DirectPredictions.Dispose();
        BridgedPredictions.Dispose();
        await Gateway.DisposeAsync();
        if (Nginx is not null)
        {
            await Nginx.DisposeAsync();
        }

        await Upstream.DisposeAsync();
    }
}
