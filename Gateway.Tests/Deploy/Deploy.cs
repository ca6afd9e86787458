using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Deploy;

internal static class Deploy
{
    public const string AppName = "tromai-gateway";

    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TromAi.Gateway.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No TromAi.Gateway.sln above {AppContext.BaseDirectory}.");
    });

    private static readonly Dictionary<string, List<Manifest>> Rendered = [];

    public static string RepoRoot => Root.Value;

    /// <summary><c>kubectl kustomize deploy/overlays/{overlay}</c>, as objects.</summary>
    public static List<Manifest> Render(string overlay)
    {
        lock (Rendered)
        {
            if (!Rendered.TryGetValue(overlay, out var manifests))
            {
                var yaml = Kubectl(["kustomize", Path.Combine(RepoRoot, "deploy", "overlays", overlay)], stdin: null);
                Rendered[overlay] = manifests = ToObjects(yaml);
            }

            return manifests;
        }
    }

    /// <summary>An example of deploy/ingress/, as objects.</summary>
    public static List<Manifest> ReadExample(string file) =>
        ToObjects(File.ReadAllText(Path.Combine(RepoRoot, "deploy", "ingress", file)));

    /// <summary>
    /// YAML to JSON without a YAML library or a cluster: <c>kubectl label --local -o json</c> decodes
    /// the objects and prints them as JSON. Removing a label nothing has changes nothing else.
    /// </summary>
    private static List<Manifest> ToObjects(string yaml)
    {
        var json = Kubectl(["label", "--local", "-f", "-", "-o", "json", "tromai-gateway-test-render-"], yaml);
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json), new JsonReaderOptions { AllowMultipleValues = true });
        var manifests = new List<Manifest>();
        while (reader.Read())
        {
            var element = JsonElement.ParseValue(ref reader);
            var items = element.TryGetProperty("kind", out var kind) && kind.GetString() == "List" ? element.At("items").EnumerateArray().ToList() : [element];
            manifests.AddRange(items.Select(item => new Manifest(item.At("kind").GetString()!, item.At("metadata", "name").GetString()!, item)));
        }

        Assert.NotEmpty(manifests);
        return manifests;
    }

    private static string Kubectl(string[] args, string? stdin)
    {
        var (exitCode, stdout, stderr) = Run("kubectl", args, stdin, RepoRoot, new() { ["KUBECONFIG"] = "/dev/null" }, // nothing here may reach a cluster
            notInstalled: "kubectl is not installed. Run ./test.sh: it installs Debian's kubernetes-client when kubectl is missing.");
        Assert.True(exitCode == 0, $"kubectl {string.Join(' ', args)} failed ({exitCode}):\n{stderr}");
        return stdout;
    }

    /// <summary>Runs a command to its end (60 s at most), <paramref name="stdin"/> written to it.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(
        string file, string[] args, string? stdin, string workingDirectory, Dictionary<string, string> environment, string notInstalled)
    {
        var start = new ProcessStartInfo(file, args)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception)
        {
            throw new InvalidOperationException(notInstalled);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (stdin is not null)
            {
                process.StandardInput.Write(stdin);
                process.StandardInput.Close();
            }

            if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 60 s.");
            }

            return (process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    public static IEnumerable<Manifest> OfKind(this IEnumerable<Manifest> manifests, string kind) => manifests.Where(m => m.Kind == kind);

    public static Manifest Single(this IEnumerable<Manifest> manifests, string kind, string name)
    {
        var matches = manifests.Where(m => m.Kind == kind && m.Name == name).ToList();
        Assert.True(matches.Count == 1, $"Expected one {kind} named {name}, found {matches.Count}.");
        return matches[0];
    }

    public static JsonElement GatewayContainer(List<Manifest> manifests)
    {
        var containers = manifests.Single("Deployment", AppName).Json.At("spec", "template", "spec", "containers");
        return Assert.Single(containers.EnumerateArray(), c => c.At("name").GetString() == "gateway");
    }

    /// <summary>The gateway container's environment as Kubernetes builds it: envFrom ConfigMaps, then env (which wins).</summary>
    public static Dictionary<string, EnvValue> GatewayEnvironment(List<Manifest> manifests)
    {
        var container = GatewayContainer(manifests);
        var env = new Dictionary<string, EnvValue>(StringComparer.Ordinal);
        if (container.TryGetProperty("envFrom", out var sources))
        {
            foreach (var source in sources.EnumerateArray())
            {
                var name = source.At("configMapRef", "name").GetString()!;
                Assert.False(source.TryGetProperty("prefix", out _));
                foreach (var entry in manifests.Single("ConfigMap", name).Json.At("data").EnumerateObject())
                {
                    env[entry.Name] = new EnvValue(entry.Value.GetString(), null);
                }
            }
        }

        if (container.TryGetProperty("env", out var variables))
        {
            foreach (var variable in variables.EnumerateArray())
            {
                var name = variable.At("name").GetString()!;
                if (variable.TryGetProperty("valueFrom", out var from))
                {
                    var secret = from.At("secretKeyRef");
                    env[name] = new EnvValue(null, (secret.At("name").GetString()!, secret.At("key").GetString()!));
                }
                else
                {
                    env[name] = new EnvValue(variable.At("value").GetString(), null);
                }
            }
        }

        return env;
    }

    /// <summary>
    /// Binds the Gateway__ variables to <see cref="GatewayOptions"/> as the app's environment
    /// configuration would, failing on any name that matches no property. A Secret's value is not
    /// in the repository: a well-formed stand-in takes its place.
    /// </summary>
    public static GatewayOptions BindGatewayOptions(Dictionary<string, EnvValue> env) =>
        Bind(env, GatewayOptions.SectionName, new GatewayOptions(), except: TelemetryOptions.SectionName);

    /// <summary>The <c>Gateway:Telemetry</c> section, which has options of its own.</summary>
    public static TelemetryOptions BindTelemetryOptions(Dictionary<string, EnvValue> env) =>
        Bind(env, TelemetryOptions.SectionName, new TelemetryOptions(), except: null);

    private static T Bind<T>(Dictionary<string, EnvValue> env, string section, T options, string? except)
    {
        var settings = env
            .Select(e => (Key: e.Key.Replace("__", ":", StringComparison.Ordinal), e.Value, Name: e.Key))
            .Where(e => e.Key.StartsWith(section + ":", StringComparison.OrdinalIgnoreCase)
                && (except is null || !e.Key.StartsWith(except + ":", StringComparison.OrdinalIgnoreCase)))
            .ToDictionary(e => e.Key, e => (string?)(e.Value.Value ?? StandIn(e.Name)));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        try
        {
            configuration.GetSection(section).Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            Assert.Fail($"The manifests set a {section.Replace(":", "__", StringComparison.Ordinal)}__ variable the app does not read, or one it cannot parse: {e.Message}");
        }

        return options;

        static string StandIn(string key) => key switch
        {
            "Gateway__Redis__Configuration" => "redis.example:6380,ssl=true,password=stand-in",
            _ => throw new InvalidOperationException($"No stand-in value for the secret {key}."),
        };
    }

    public static TimeSpan ProxyActivityTimeout() =>
        BindGatewayOptions(GatewayEnvironment(Render("prod"))).Proxy.ActivityTimeout;

    public static TimeSpan PreStopSleep(JsonElement container)
    {
        var preStop = container.At("lifecycle", "preStop");
        if (preStop.TryGetProperty("sleep", out var sleep))
        {
            return TimeSpan.FromSeconds(sleep.At("seconds").GetInt32());
        }

        var command = preStop.At("exec", "command").EnumerateArray().Select(c => c.GetString()!).ToArray();
        Assert.True(command is ["sleep", _], $"preStop should be a plain sleep, not `{string.Join(' ', command)}`.");
        return TimeSpan.FromSeconds(double.Parse(command[1], CultureInfo.InvariantCulture));
    }

    /// <summary>A port by number or by the name of one of the container's ports.</summary>
    public static int ResolvePort(JsonElement container, JsonElement port)
    {
        if (port.ValueKind == JsonValueKind.Number)
        {
            return port.GetInt32();
        }

        var name = port.GetString();
        var named = container.At("ports").EnumerateArray().Where(p => p.OptionalPath("name").ValueKind == JsonValueKind.String && p.At("name").GetString() == name).ToList();
        Assert.True(named.Count == 1, $"No container port named {name} in {container.At("name").GetString()}.");
        return named[0].At("containerPort").GetInt32();
    }

    /// <summary>Whether a selector (label map) selects objects carrying these labels.</summary>
    public static bool Selects(JsonElement selector, JsonElement labels) =>
        selector.EnumerateObject().Any()
        && selector.EnumerateObject().All(s => labels.OptionalPath(s.Name).ValueKind == JsonValueKind.String && labels.At(s.Name).GetString() == s.Value.GetString());

    public static bool? Flag(JsonElement context, string name) =>
        context.OptionalPath(name).ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => null,
        };

    /// <summary>A Gateway API duration (GEP-2257): 1h, 30m, 10s, 500ms, 1h30m.</summary>
    public static TimeSpan GatewayApiDuration(string value)
    {
        var parts = Regex.Matches(value, @"(\d+)(h|ms|m|s)");
        Assert.True(parts.Sum(p => p.Length) == value.Length && parts.Count > 0, $"'{value}' is not a Gateway API duration.");
        return parts.Aggregate(TimeSpan.Zero, (sum, p) => sum + (p.Groups[2].Value switch
        {
            "h" => TimeSpan.FromHours(int.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture)),
            "m" => TimeSpan.FromMinutes(int.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture)),
            "s" => TimeSpan.FromSeconds(int.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture)),
            _ => TimeSpan.FromMilliseconds(int.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture)),
        }));
    }

    /// <summary>An nginx size (50m, 512k, 1g, 1024) in bytes; 0 means unlimited.</summary>
    public static long NginxSize(string value)
    {
        var match = Regex.Match(value.Trim(), @"^(\d+)([kKmMgG]?)$");
        Assert.True(match.Success, $"'{value}' is not an nginx size.");
        var number = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var size = number * (match.Groups[2].Value.ToLowerInvariant() switch { "k" => 1L << 10, "m" => 1L << 20, "g" => 1L << 30, _ => 1L });
        return size == 0 ? long.MaxValue : size;
    }

    public static JsonElement At(this JsonElement element, params string[] path)
    {
        var current = element;
        foreach (var name in path)
        {
            Assert.True(current.ValueKind == JsonValueKind.Object && current.TryGetProperty(name, out current), $"Missing '{name}' in {string.Join('.', path)}.");
        }

        return current;
    }

    /// <summary>The property, or an Undefined element when it (or the element itself) is absent.</summary>
    public static JsonElement OptionalPath(this JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value : default;

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args, string workingDirectory, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file, args)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout}.");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
