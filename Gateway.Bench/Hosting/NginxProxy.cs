using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace TromAi.Gateway.Bench.Hosting;

/// <summary>
/// Debian's nginx as a plain reverse proxy in front of the same upstream, with a configuration of the bench's own
/// on a loopback port: what a well-known proxy adds to a request, side by side with what the gateway adds.
/// Absent when nginx is not installed; the bench then says so instead of failing.
/// </summary>
internal sealed class NginxProxy : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private readonly Process _process;
    private readonly string _directory;

    private NginxProxy(Process process, string directory, Uri baseUrl)
    {
        _process = process;
        _directory = directory;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    /// <summary>The master process; the worker that serves requests is its child.</summary>
    public int ProcessId => _process.Id;

    private static readonly string[] UsualPlaces = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];

    public static string? FindExecutable() =>
        UsualPlaces.FirstOrDefault(File.Exists)
        ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "nginx")).FirstOrDefault(File.Exists);

    /// <param name="executable">Null to look where Debian installs it; "none" to leave nginx out.</param>
    /// <returns>Null when nginx is not installed (or left out).</returns>
    public static async Task<NginxProxy?> StartAsync(Uri upstream, string? executable, CancellationToken cancellationToken)
    {
        if ((executable ?? FindExecutable()) is not { } nginx || nginx == "none" || !File.Exists(nginx))
        {
            return null;
        }

        var directory = Directory.CreateTempSubdirectory("gateway-bench-nginx-").FullName;
        // The workers run as an unprivileged user when the bench runs as root: they must reach their temp folders.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, (UnixFileMode)0b111_111_111);
        }
        var port = FreePort();
        await File.WriteAllTextAsync(Path.Combine(directory, "nginx.conf"), Config(directory, port, upstream), cancellationToken);
        var start = new ProcessStartInfo(nginx)
        {
            ArgumentList = { "-p", directory + "/", "-c", Path.Combine(directory, "nginx.conf"), "-e", Path.Combine(directory, "error.log") },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("nginx did not start.");
        var proxy = new NginxProxy(process, directory, new Uri($"http://127.0.0.1:{port}/"));
        try
        {
            await proxy.WaitUntilListeningAsync(port, cancellationToken);
            return proxy;
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Proxying as the gateway does: HTTP/1.1 with kept-alive connections to the upstream, responses streamed, not
    /// buffered; a WebSocket upgrade (Socket.IO) is passed through, and only then is the upstream connection not kept alive.
    /// </summary>
    private static string Config(string directory, int port, Uri upstream) => string.Create(CultureInfo.InvariantCulture, $$"""
        daemon off;
        worker_processes 1;
        pid {{directory}}/nginx.pid;
        events { worker_connections 4096; }
        http {
          access_log off;
          client_body_temp_path {{directory}}/client_body;
          proxy_temp_path {{directory}}/proxy;
          fastcgi_temp_path {{directory}}/fastcgi;
          uwsgi_temp_path {{directory}}/uwsgi;
          scgi_temp_path {{directory}}/scgi;
          map $http_upgrade $connection_upgrade {
            default upgrade;
            '' "";
          }
          upstream tromai {
            server {{upstream.Host}}:{{upstream.Port}};
            keepalive 64;
          }
          server {
            listen 127.0.0.1:{{port}};
            location / {
              proxy_pass http://tromai;
              proxy_http_version 1.1;
              proxy_set_header Upgrade $http_upgrade;
              proxy_set_header Connection $connection_upgrade;
              proxy_read_timeout 1h;
              proxy_set_header Host $host;
              proxy_buffering off;
              proxy_request_buffering off;
            }
          }
        }
        """);

    private async Task WaitUntilListeningAsync(int port, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
            {
                var log = Path.Combine(_directory, "error.log");
                throw new InvalidOperationException($"nginx exited with {_process.ExitCode}: {await _process.StandardError.ReadToEndAsync(cancellationToken)} {(File.Exists(log) ? await File.ReadAllTextAsync(log, cancellationToken) : "")}");
            }

            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
                return;
            }
            catch (SocketException) when (deadline.Elapsed < StartTimeout)
            {
                // nginx prints nothing when ready: its port answering is the sign. Re-try, briefly spaced.
                await Task.Delay(50, cancellationToken);
            }
        }
    }

    /// <summary>CPU time of nginx's master and its worker(s).</summary>
    public TimeSpan CpuTime()
    {
        var total = ProcessMetrics.CpuTime(_process.Id);
        var children = $"/proc/{_process.Id}/task/{_process.Id}/children";
        if (File.Exists(children))
        {
            foreach (var pid in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                total += ProcessMetrics.CpuTime(int.Parse(pid, CultureInfo.InvariantCulture));
            }
        }

        return total;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A temp folder left behind is harmless.
        }
    }
}
