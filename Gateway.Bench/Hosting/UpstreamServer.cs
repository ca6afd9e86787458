using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

using TromAi.Gateway.Bench.Streams;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>
/// The Node test upstream (<c>Gateway.Tests/upstream/server.js</c>), started by the bench or already running.
/// A lean sibling of the tests' <c>TestUpstream</c> fixture: the bench needs the process id (the upstream's
/// CPU time tells whether it, not the gateway, limits a run) and none of the fault controls.
/// </summary>
internal sealed class UpstreamServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly ChildProcess? _process;

    private UpstreamServer(Uri baseUrl, ChildProcess? process)
    {
        BaseUrl = baseUrl;
        _process = process;
        Control = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseUrl { get; }

    /// <summary>Null when the upstream was given by URL: its CPU time is then not reported.</summary>
    public int? ProcessId => _process?.Id;

    private HttpClient Control { get; }

    public static UpstreamServer Attach(Uri baseUrl) => new(baseUrl, null);

    public static async Task<UpstreamServer> StartAsync(CancellationToken cancellationToken)
    {
        var directory = FindUpstreamDirectory();
        if (!Directory.Exists(Path.Combine(directory, "node_modules")))
        {
            throw new InvalidOperationException($"The test upstream's packages are not installed: run ./test.sh once (or `npm ci` in {directory}).");
        }

        var port = 0;
        var start = new ProcessStartInfo("node", "server.js") { WorkingDirectory = directory };
        start.Environment["PORT"] = "0";
        var process = await ChildProcess.StartAsync(
            start,
            line => line.StartsWith("LISTENING ", StringComparison.Ordinal) && int.TryParse(line["LISTENING ".Length..], CultureInfo.InvariantCulture, out port),
            "test upstream",
            StartTimeout,
            cancellationToken);
        return new UpstreamServer(new Uri($"http://127.0.0.1:{port}/"), process);
    }

    /// <summary>
    /// The upstream's stamp clock minus the bench's (<see cref="BenchClock.UpstreamOffsetMs"/>): read 21 times,
    /// from the round trip that took least, taking its midpoint as the moment the upstream read its clock.
    /// </summary>
    /// <returns>The offset and that round trip, in ms.</returns>
    public async Task<(double OffsetMs, double RoundTripMs)> MeasureClockOffsetAsync(CancellationToken cancellationToken)
    {
        var best = (OffsetMs: 0.0, RoundTripMs: double.MaxValue);
        for (var i = 0; i < 21; i++)
        {
            var sent = BenchClock.NowEpochMs();
            var clock = await Control.GetFromJsonAsync<JsonElement>("test/clock", cancellationToken);
            var received = BenchClock.NowEpochMs();
            if (received - sent < best.RoundTripMs)
            {
                best = (clock.GetProperty("now").GetDouble() - (sent + received) / 2, received - sent);
            }
        }

        return best;
    }

    /// <summary>Ids of the Socket.IO sockets the upstream holds right now.</summary>
    public async Task<IReadOnlySet<string>> SocketIdsAsync(CancellationToken cancellationToken)
    {
        var sockets = await Control.GetFromJsonAsync<JsonElement>("test/sockets", cancellationToken);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in sockets.GetProperty("ids").EnumerateArray())
        {
            ids.Add(id.GetString()!);
        }

        return ids;
    }

    public async ValueTask DisposeAsync()
    {
        Control.Dispose();
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }
    }

    private static string FindUpstreamDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "Gateway.Tests", "upstream");
            if (File.Exists(Path.Combine(candidate, "server.js")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("Gateway.Tests/upstream/server.js not found above " + AppContext.BaseDirectory + "; pass --upstream <url>.");
    }
}
