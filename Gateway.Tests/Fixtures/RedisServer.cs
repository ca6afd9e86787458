using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, without persistence. It can be stopped, started and
/// restarted on the same port, as Redis is in production, to put the gateway's Redis use through an outage.
/// As a class fixture it starts before the class's first test; constructed directly it starts stopped.
/// </summary>
public sealed class RedisServer : IAsyncLifetime, IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private static readonly string[] SearchPath =
        [.. (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries), "/usr/bin", "/usr/local/bin"];

    private readonly StringBuilder _output = new();
    private Process? _process;

    public RedisServer() => Port = FreePort();

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration string for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Starts the server and returns once it answers PING.</summary>
    public async Task StartAsync()
    {
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException($"redis-server is already running on port {Port}.");
        }

        var start = new ProcessStartInfo(FindExecutable())
        {
            ArgumentList = { "--save", "", "--appendonly", "no", "--port", Port.ToString(), "--bind", "127.0.0.1" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnOutput(e.Data, ready);
        process.ErrorDataReceived += (_, e) => OnOutput(e.Data, ready);
        process.Exited += (_, _) => ready.TrySetException(
            new InvalidOperationException($"redis-server exited with {process.ExitCode} before it was ready on port {Port}:\n{Output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        try
        {
            await ready.Task.WaitAsync(StartTimeout);
            await PingAsync();
        }
        catch (TimeoutException)
        {
            await StopAsync();
            throw new TimeoutException($"redis-server did not become ready on port {Port} within {StartTimeout}:\n{Output}");
        }
    }

    /// <summary>Kills the server (no shutdown handshake, as in a crash) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _process, null) is not { } process)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync();
        process.Dispose();
    }

    /// <summary>Kills the server and starts a new, empty one on the same port.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartAsync();
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    Task IAsyncLifetime.InitializeAsync() => StartAsync();

    Task IAsyncLifetime.DisposeAsync() => StopAsync();

    private string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    private void OnOutput(string? line, TaskCompletionSource ready)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (line.Contains("Ready to accept connections", StringComparison.Ordinal))
        {
            ready.TrySetResult();
        }
    }

    private async Task PingAsync()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray());
        var reply = new byte[7];
        var read = 0;
        while (read < reply.Length && await stream.ReadAsync(reply.AsMemory(read)) is var n and > 0)
        {
            read += n;
        }

        if (!reply.AsSpan(0, read).SequenceEqual("+PONG\r\n"u8))
        {
            throw new InvalidOperationException($"redis-server on port {Port} answered PING with '{Encoding.ASCII.GetString(reply, 0, read)}'.");
        }
    }

    private static string FindExecutable()
    {
        foreach (var directory in SearchPath)
        {
            var candidate = Path.Combine(directory, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(
            "redis-server is not installed: run ./test.sh, which installs what the tests need (the Debian package redis-server).");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
