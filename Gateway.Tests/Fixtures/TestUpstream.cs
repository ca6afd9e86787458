using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// The Node test upstream (<c>Gateway.Tests/upstream/server.js</c>): TROM.AI's API as one of its eras serves it
/// (<see cref="TestUpstreamMode"/>; the Socket.IO era on the real socket.io 4.8 server by default), with control
/// endpoints for faults. One process per instance.
/// </summary>
public sealed class TestUpstream : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly Process _process;
    private readonly object _gate = new();
    private TaskCompletionSource<int> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _stderr = new();

    private TestUpstream(Process process) => _process = process;

    public Uri BaseUrl { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public static string Directory { get; } = FindUpstreamDirectory();

    /// <summary>Starts the upstream as the TROM.AI of <paramref name="mode"/>.</summary>
    /// <param name="environment">Extra environment variables (see its README), e.g. <c>HEARTBEAT_MS</c>, <c>CHATFLOW_KEYS</c>.</param>
    public static Task<TestUpstream> StartAsync(TestUpstreamMode mode, IDictionary<string, string>? environment = null)
    {
        var variables = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        switch (mode)
        {
            case TestUpstreamMode.Sse:
                variables["STREAMING"] = "sse";
                break;
            case TestUpstreamMode.TromAi3:
                variables["TROMAI_VERSION"] = "3";
                break;
        }

        return StartAsync(environment: variables);
    }

    /// <param name="environment">Extra environment variables for the upstream, e.g. <c>STREAMING=sse</c> for an SSE-era TROM.AI (see its README).</param>
    public static async Task<TestUpstream> StartAsync(int port = 0, IDictionary<string, string>? environment = null)
    {
        if (!System.IO.Directory.Exists(Path.Combine(Directory, "node_modules")))
        {
            throw new InvalidOperationException(
                $"The test upstream's packages are not installed: run ./test.sh (or `npm ci` in {Directory}).");
        }

        var start = new ProcessStartInfo("node", "server.js")
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["PORT"] = port.ToString();
        foreach (var (name, value) in environment ?? Enumerable.Empty<KeyValuePair<string, string>>())
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var upstream = new TestUpstream(process);
        process.OutputDataReceived += (_, e) => upstream.OnOutput(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (upstream._stderr)
                {
                    upstream._stderr.AppendLine(e.Data);
                }
            }
        };
        process.Exited += (_, _) => upstream.CurrentListening.TrySetException(
            new InvalidOperationException($"The test upstream exited with {process.ExitCode}: {upstream.Errors}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var listeningPort = await upstream.CurrentListening.Task.WaitAsync(StartTimeout);
        upstream.BaseUrl = new Uri($"http://127.0.0.1:{listeningPort}/");
        upstream.Http = new HttpClient { BaseAddress = upstream.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        return upstream;
    }

    public string Errors
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    private TaskCompletionSource<int> CurrentListening
    {
        get
        {
            lock (_gate)
            {
                return _listening;
            }
        }
    }

    private void OnOutput(string? line)
    {
        if (line is not null && line.StartsWith("LISTENING ", StringComparison.Ordinal))
        {
            CurrentListening.TrySetResult(int.Parse(line["LISTENING ".Length..]));
        }
    }

    /// <summary>Socket.IO sockets the upstream holds right now.</summary>
    public async Task<int> SocketCountAsync()
    {
        var sockets = await Http.GetFromJsonAsync<JsonElement>("test/sockets");
        return sockets.GetProperty("count").GetInt32();
    }

    /// <summary>Waits until the upstream holds <paramref name="expected"/> sockets (disconnects reach it asynchronously).</summary>
    public async Task WaitForSocketCountAsync(int expected, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        int count;
        while ((count = await SocketCountAsync()) != expected)
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"The upstream holds {count} sockets, expected {expected}.");
            }

            // Socket count is state on another process with no push channel: re-ask, briefly spaced.
            await Task.Delay(50);
        }
    }

    /// <summary>Every request the upstream received under /api/, oldest first.</summary>
    public async Task<JsonArray> RequestsAsync() => (await Http.GetFromJsonAsync<JsonArray>("test/requests"))!;

    /// <summary>Waits until the upstream has received a request for <paramref name="path"/> (e.g. an abort the gateway sends on its own).</summary>
    public async Task WaitForRequestAsync(string path, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (!(await RequestsAsync()).Any(r => (string?)r!["path"] == path))
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"The upstream received no request for {path}.");
            }

            // Its request log lives in another process: re-ask, briefly spaced.
            await Task.Delay(50);
        }
    }

    public async Task<int> DropSocketsAsync()
    {
        var response = await Http.PostAsync("test/drop-sockets", null);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("dropped").GetInt32();
    }

    /// <summary>Closes the upstream's server (every socket and connection drops) and listens again on the same port.</summary>
    public async Task RestartAsync(TimeSpan down)
    {
        TaskCompletionSource<int> listening;
        lock (_gate)
        {
            listening = _listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        var response = await Http.PostAsync($"test/restart?downMs={(int)down.TotalMilliseconds}", null);
        response.EnsureSuccessStatusCode();
        await listening.Task.WaitAsync(StartTimeout);
    }

    public async Task StallAsync(TimeSpan duration)
    {
        var response = await Http.PostAsync($"test/stall?ms={(int)duration.TotalMilliseconds}", null);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>
    /// 3.x: assigns API keys to chatflows (replacing every earlier assignment), so that a prediction of one of them
    /// must present its key as <c>Authorization: Bearer</c>, and sets the keys the admin API accepts besides those.
    /// </summary>
    public Task SetApiKeysAsync(IReadOnlyDictionary<string, string> chatflowKeys, params string[] apiKeys) =>
        ConfigureAsync(new { chatflowKeys, apiKeys });

    /// <summary>3.x: how often every open stream gets a <c>:heartbeat</c>, and how long a flow takes before <c>metadata</c>/<c>end</c>.</summary>
    public Task SetTimingAsync(TimeSpan heartbeat, TimeSpan metadataDelay) =>
        ConfigureAsync(new { heartbeatMs = (int)heartbeat.TotalMilliseconds, metadataDelayMs = (int)metadataDelay.TotalMilliseconds });

    /// <summary>3.x: the <c>:heartbeat</c> comments written to open streams since the upstream started.</summary>
    public async Task<int> HeartbeatsSentAsync() =>
        (await Http.GetFromJsonAsync<JsonElement>("test/config")).GetProperty("heartbeatsSent").GetInt32();

    /// <summary>Opens a gate: a held SSE sample (<c>?gate=</c>) or a 3.x prediction's held metadata (<c>overrideConfig.holdMetadata</c>).</summary>
    public async Task<bool> ReleaseAsync(string gate)
    {
        var response = await Http.PostAsync($"test/release/{Uri.EscapeDataString(gate)}", null);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("released").GetBoolean();
    }

    private async Task ConfigureAsync(object settings)
    {
        using var response = await Http.PutAsJsonAsync("test/config", settings);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The test upstream refused its settings: {await response.Content.ReadAsStringAsync()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
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

        throw new InvalidOperationException("Gateway.Tests/upstream/server.js not found above " + AppContext.BaseDirectory);
    }
}
