using System.Diagnostics;
using System.Text.RegularExpressions;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>The gateway as its own process (the built TromAi.Gateway.dll), for tests that must kill an instance outright.</summary>
public sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly OutputLines _output;

    private GatewayProcess(Process process, OutputLines output, Uri baseUrl)
    {
        _process = process;
        _output = output;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    /// <summary>What the process has written so far (its log), for failure messages.</summary>
    public string Output => _output.ToString();

    public Uri HubUrl => new(BaseUrl, "hubs/prediction");

    public static async Task<GatewayProcess> StartAsync(IDictionary<string, string> settings)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "TromAi.Gateway.dll"), "--urls", "http://127.0.0.1:0"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information" },
        };
        foreach (var (key, value) in settings)
        {
            start.Environment[key.Replace(":", "__")] = value;
        }

        var process = Process.Start(start)!;
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new OutputLines();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            output.Add(e.Data);
            if (ListeningLine().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(new Uri(match.Groups[1].Value.TrimEnd('/') + "/"));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.Add(e.Data);
            }
        };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"The gateway process exited with {process.ExitCode}."));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new GatewayProcess(process, output, await listening.Task.WaitAsync(TimeSpan.FromSeconds(60)));
    }

    /// <summary>Sends SIGTERM, as Kubernetes does to a pod it stops.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()])!;
        await kill.WaitForExitAsync();
    }

    /// <summary>Freezes the process (SIGSTOP), as a long GC pause or a CPU-starved pod would: sockets stay open, nothing is read.</summary>
    public Task PauseAsync() => SignalAsync("-STOP");

    /// <summary>Lets a paused process run again (SIGCONT).</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    private async Task SignalAsync(string signal)
    {
        using var kill = Process.Start("kill", [signal, _process.Id.ToString()])!;
        await kill.WaitForExitAsync();
    }

    /// <summary>Waits for the process to end by itself and returns its exit code; a process still running after <paramref name="timeout"/> fails the wait, with its log.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The gateway process was still running after {timeout}. Its log:\n{Output}");
        }

        return _process.ExitCode;
    }

    /// <summary>
    /// Waits for a line of the process's log that contains <paramref name="text"/>, written before or after
    /// the call, and returns it: what the process did on its own schedule (a signal handled, say) shows there first.
    /// </summary>
    public async Task<string> WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var line = _output.WaitForAsync(candidate => candidate.Contains(text, StringComparison.Ordinal));
        var exited = _process.WaitForExitAsync(); // completes once its output is read to the end too
        try
        {
            await Task.WhenAny(line, exited).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The gateway process wrote no line with \"{text}\" within {timeout}. Its log:\n{Output}");
        }

        return line.IsCompleted
            ? await line
            : throw new InvalidOperationException($"The gateway process exited ({_process.ExitCode}) without a line with \"{text}\". Its log:\n{Output}");
    }

    /// <summary>Ends the process at once, as a crashed node or an OOM kill would: nothing is cleaned up.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningLine();

    /// <summary>The lines the process has written, and who waits for which line.</summary>
    private sealed class OutputLines
    {
        private readonly Lock _gate = new();
        private readonly List<string> _lines = [];
        private readonly List<(Func<string, bool> Matches, TaskCompletionSource<string> Found)> _waiters = [];

        public void Add(string line)
        {
            List<TaskCompletionSource<string>> found;
            lock (_gate)
            {
                _lines.Add(line);
                found = _waiters.Where(waiter => waiter.Matches(line)).Select(waiter => waiter.Found).ToList();
                _waiters.RemoveAll(waiter => found.Contains(waiter.Found));
            }

            foreach (var waiter in found)
            {
                waiter.TrySetResult(line);
            }
        }

        public Task<string> WaitForAsync(Func<string, bool> matches)
        {
            lock (_gate)
            {
                if (_lines.FirstOrDefault(matches) is { } line)
                {
                    return Task.FromResult(line);
                }

                var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add((matches, found));
                return found.Task;
            }
        }

        public override string ToString()
        {
            lock (_gate)
            {
                return string.Join('\n', _lines);
            }
        }
    }
}
