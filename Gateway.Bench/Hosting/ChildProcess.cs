using System.Diagnostics;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>
/// A process the bench starts (the Node upstream, the gateway) and kills when done. Its output is drained
/// as it comes, so a chatty child never blocks on a full pipe, and the last lines are kept for error messages.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private const int KeptLines = 40;

    private readonly Process _process;
    private readonly Queue<string> _lastLines = new();
    private readonly Action<string> _onOutputLine;

    private ChildProcess(Process process, Action<string> onOutputLine)
    {
        _process = process;
        _onOutputLine = onOutputLine;
    }

    public int Id => _process.Id;

    public Task WaitForExitAsync(CancellationToken cancellationToken) => _process.WaitForExitAsync(cancellationToken);

    /// <summary>The last lines the process wrote (stdout and stderr), for a message when it fails.</summary>
    public string RecentOutput
    {
        get
        {
            lock (_lastLines)
            {
                return string.Join(Environment.NewLine, _lastLines);
            }
        }
    }

    /// <summary>
    /// Starts the process and completes once <paramref name="ready"/> has seen every line it needs on stdout
    /// (it returns true then); fails if the process exits or stays silent for <paramref name="timeout"/>.
    /// </summary>
    public static async Task<ChildProcess> StartAsync(ProcessStartInfo start, Func<string, bool> ready, string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var child = Start(start, line =>
        {
            if (!started.Task.IsCompleted && ready(line))
            {
                started.TrySetResult();
            }
        });

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var exited = child.WaitForExitAsync(deadline.Token);
        if (await Task.WhenAny(started.Task, exited) == started.Task)
        {
            return child;
        }

        await child.DisposeAsync();
        cancellationToken.ThrowIfCancellationRequested();
        var why = exited.IsCanceled ? $"was not ready within {timeout.TotalSeconds:0} s" : "exited before it was ready";
        throw new InvalidOperationException($"The {name} {why}. Its last output:{Environment.NewLine}{child.RecentOutput}");
    }

    private static ChildProcess Start(ProcessStartInfo start, Action<string> onOutputLine)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        var child = new ChildProcess(new Process { StartInfo = start }, onOutputLine);
        child._process.OutputDataReceived += (_, e) => child.OnLine(e.Data, isOutput: true);
        child._process.ErrorDataReceived += (_, e) => child.OnLine(e.Data, isOutput: false);
        child._process.Start();
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    private void OnLine(string? line, bool isOutput)
    {
        if (line is null)
        {
            return;
        }

        lock (_lastLines)
        {
            _lastLines.Enqueue(line);
            if (_lastLines.Count > KeptLines)
            {
                _lastLines.Dequeue();
            }
        }

        if (isOutput)
        {
            _onOutputLine(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                // No graceful shutdown: closing thousands of sessions one by one measures nothing and takes long.
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
            // Never started, or already reaped.
        }
        finally
        {
            _process.Dispose();
        }
    }
}
