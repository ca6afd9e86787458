using System.Diagnostics;
using TromAi.Gateway.Bench.Probe;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>
/// The gateway under test: its Release build run as its own process (<c>dotnet TromAi.Gateway.dll</c>, exactly
/// as deployed, Server GC included), so its RSS and CPU time are its own and not the bench clients'. Or a
/// gateway already running, given by URL (and optionally pid).
/// </summary>
internal sealed class GatewayServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly ChildProcess? _process;
    private readonly int? _attachedPid;
    private int _disposed;

    private GatewayServer(Uri baseUrl, ChildProcess? process, int? attachedPid, GatewayProbe? probe)
    {
        BaseUrl = baseUrl;
        _process = process;
        _attachedPid = attachedPid;
        Probe = probe;
    }

    public Uri BaseUrl { get; }

    public Uri HubUrl => new(BaseUrl, PredictionHub.Path.TrimStart('/'));

    /// <summary>Null for a gateway given by URL without <c>--gateway-pid</c>: RSS and CPU are then not reported.</summary>
    public int? ProcessId => _process?.Id ?? _attachedPid;

    /// <summary>The managed-heap probe; only in a gateway the bench started.</summary>
    public GatewayProbe? Probe { get; }

    public bool IsOwned => _process is not null;

    public static GatewayServer Attach(Uri baseUrl, int? pid) => new(baseUrl, null, pid, null);

    /// <param name="environment">Variables for the gateway process: runtime knobs (<c>DOTNET_...</c>) or settings (<c>Gateway__Relay__MaxBacklog</c>).</param>
    public static async Task<GatewayServer> StartAsync(Uri upstream, IReadOnlyDictionary<string, string> environment, CancellationToken cancellationToken)
    {
        // The gateway assembly the bench was built against, with its runtimeconfig, deps and appsettings beside it.
        var gatewayAssembly = typeof(PredictionHub).Assembly.Location;
        var probePath = Path.Combine(Path.GetTempPath(), $"tromai-bench-probe-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(gatewayAssembly)!, // the content root, where appsettings.json is
        };
        start.ArgumentList.Add(gatewayAssembly);
        Add(start, "urls", "http://127.0.0.1:0");
        Add(start, "Gateway:Upstream:BaseUrl", upstream.ToString());
        // Quiet, except for the lines that say where it listens and that it has started.
        Add(start, "Logging:LogLevel:Default", "Warning");
        Add(start, "Logging:LogLevel:Microsoft.Hosting.Lifetime", "Information");
        // Every bench client comes from 127.0.0.1: the per-address limits would measure themselves.
        // Environment variables, so --gateway-env can still set them.
        start.Environment["Gateway__Limits__MaxConnectionsPerIp"] = "1000000";
        start.Environment["Gateway__Limits__ConnectsPerIpPerSecond"] = "1000000";
        start.Environment["Gateway__Limits__RequestsPerIpPerSecond"] = "1000000";
        start.Environment["Gateway__Limits__MaxConnections"] = "1000000";
        foreach (var (variable, value) in environment)
        {
            start.Environment[variable] = value;
        }

        start.Environment["DOTNET_STARTUP_HOOKS"] = typeof(GatewayProbe).Assembly.Location;
        start.Environment[GatewayProbeServer.SocketPathVariable] = probePath;

        string? address = null;
        var process = await ChildProcess.StartAsync(
            start,
            line =>
            {
                const string listening = "Now listening on: ";
                if (line.IndexOf(listening, StringComparison.Ordinal) is var at and >= 0)
                {
                    address = line[(at + listening.Length)..].Trim();
                }

                return address is not null && line.Contains("Application started.", StringComparison.Ordinal);
            },
            "gateway",
            StartTimeout,
            cancellationToken);

        return new GatewayServer(new Uri(address!.TrimEnd('/') + "/"), process, null, new GatewayProbe(probePath));
    }

    private static void Add(ProcessStartInfo start, string key, string value)
    {
        start.ArgumentList.Add("--" + key);
        start.ArgumentList.Add(value);
    }

    /// <summary>Kills a gateway the bench started (its sessions drop at once); leaves one given by URL alone. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        if (Probe is not null)
        {
            File.Delete(Probe.SocketPath);
        }
    }
}
