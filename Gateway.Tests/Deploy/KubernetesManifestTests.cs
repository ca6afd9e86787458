using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Health;
using TromAi.Gateway.Telemetry;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>
/// deploy/ agrees with the app and its image: each overlay is rendered by <c>kubectl kustomize</c>
/// (the command a deployment runs) and read back as JSON through <c>kubectl label --local</c>, so
/// the tests read what Kubernetes would get, with no YAML library and no cluster.
/// </summary>
public sealed class KubernetesManifestTests
{
    public static TheoryData<string> Overlays => new() { "dev", "prod" };

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_overlay_renders_the_gateway_and_everything_it_runs_with(string overlay)
    {
        var manifests = Deploy.Render(overlay);

        var deployment = manifests.Single("Deployment", Deploy.AppName);
        var podLabels = deployment.Json.At("spec", "template", "metadata", "labels");
        Assert.True(Deploy.Selects(deployment.Json.At("spec", "selector", "matchLabels"), podLabels), "The Deployment's selector must match its own pods.");
        Assert.True(Deploy.Selects(manifests.Single("Service", Deploy.AppName).Json.At("spec", "selector"), podLabels), "The Service must select the gateway's pods.");
        Assert.True(Deploy.Selects(manifests.Single("PodDisruptionBudget", Deploy.AppName).Json.At("spec", "selector", "matchLabels"), podLabels), "The PodDisruptionBudget must select the gateway's pods.");

        var hpa = manifests.Single("HorizontalPodAutoscaler", Deploy.AppName).Json;
        Assert.Equal("Deployment", hpa.At("spec", "scaleTargetRef", "kind").GetString());
        Assert.Equal(Deploy.AppName, hpa.At("spec", "scaleTargetRef", "name").GetString());
        Assert.Contains(hpa.At("spec", "metrics").EnumerateArray(), metric => metric.At("resource", "name").GetString() == "cpu");
        Assert.True(hpa.At("spec", "minReplicas").GetInt32() >= 1);
        Assert.True(hpa.At("spec", "maxReplicas").GetInt32() >= hpa.At("spec", "minReplicas").GetInt32());
        Assert.False(deployment.Json.At("spec").TryGetProperty("replicas", out _), "The HorizontalPodAutoscaler owns the replica count: a fixed spec.replicas would reset it on every apply.");

        var gateway = Deploy.GatewayContainer(manifests);
        Assert.True(gateway.At("resources", "requests").TryGetProperty("cpu", out _), "The HorizontalPodAutoscaler scales on CPU utilisation, which needs a CPU request.");
        Assert.True(gateway.At("resources", "limits").TryGetProperty("memory", out _), "The gateway needs a memory limit.");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_container_port_is_the_images_port_and_the_Services_target(string overlay)
    {
        var manifests = Deploy.Render(overlay);
        var gateway = Deploy.GatewayContainer(manifests);
        var http = Assert.Single(gateway.At("ports").EnumerateArray(), port => port.At("name").GetString() == "http");
        var containerPort = http.At("containerPort").GetInt32();

        var dockerfile = Dockerfile.Load();
        Assert.Equal(dockerfile.ListenPort, containerPort);
        Assert.Contains(containerPort.ToString(CultureInfo.InvariantCulture), dockerfile.Exposed);

        // The Deployment sets Urls too (any image of the gateway then listens where the probes look).
        var env = Deploy.GatewayEnvironment(manifests);
        Assert.True(env.TryGetValue("Urls", out var urls), "The gateway's ConfigMap should set Urls, as the image does.");
        Assert.Equal(containerPort, Dockerfile.PortOf(urls.Value!));
        Assert.DoesNotContain("localhost", urls.Value!, StringComparison.OrdinalIgnoreCase);

        var service = manifests.Single("Service", Deploy.AppName).Json;
        foreach (var port in service.At("spec", "ports").EnumerateArray())
        {
            Assert.Equal(containerPort, Deploy.ResolvePort(gateway, port.At("targetPort")));
        }

        var scrape = manifests.Single("Deployment", Deploy.AppName).Json.At("spec", "template", "metadata", "annotations");
        Assert.Equal(containerPort.ToString(CultureInfo.InvariantCulture), scrape.At("prometheus.io/port").GetString());
        Assert.Equal(Deploy.BindTelemetryOptions(env).MetricsPath, scrape.At("prometheus.io/path").GetString());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_probes_ask_the_apps_health_endpoints_on_its_port(string overlay)
    {
        var gateway = Deploy.GatewayContainer(Deploy.Render(overlay));
        var containerPort = Deploy.ResolvePort(gateway, JsonDocument.Parse("\"http\"").RootElement);

        Assert.Equal(HealthEndpoints.Liveness, gateway.At("livenessProbe", "httpGet", "path").GetString());
        Assert.Equal(HealthEndpoints.Readiness, gateway.At("readinessProbe", "httpGet", "path").GetString());
        Assert.Equal(HealthEndpoints.Liveness, gateway.At("startupProbe", "httpGet", "path").GetString());
        foreach (var probe in new[] { "livenessProbe", "readinessProbe", "startupProbe" })
        {
            Assert.Equal(containerPort, Deploy.ResolvePort(gateway, gateway.At(probe, "httpGet", "port")));
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_environment_variable_is_a_setting_the_app_reads(string overlay)
    {
        var env = Deploy.GatewayEnvironment(Deploy.Render(overlay));
        Assert.NotEmpty(env);

        foreach (var name in env.Keys.Where(name => !name.StartsWith(GatewayOptions.SectionName + "__", StringComparison.Ordinal)))
        {
            // ASPNETCORE_-prefixed variables rank below appsettings.json, whose Urls would win.
            Assert.False(name is "ASPNETCORE_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_HTTPS_PORTS",
                $"{name} has no effect: appsettings.json sets Urls, which outranks it. Set Urls instead.");
            Assert.True(name is "Urls" or "AllowedHosts" or "ASPNETCORE_ENVIRONMENT" or "DOTNET_ENVIRONMENT" or "ASPNETCORE_FORWARDEDHEADERS_ENABLED"
                    || name.StartsWith("Logging__", StringComparison.Ordinal) || name.StartsWith("DOTNET_", StringComparison.Ordinal),
                $"{name} is neither a Gateway__ setting nor a framework setting the app reads.");
        }

        var options = Deploy.BindGatewayOptions(env); // fails, naming the key, for a name GatewayOptions does not have
        var validation = new GatewayOptionsValidator().Validate(null, options);
        Assert.True(validation.Succeeded, validation.FailureMessage);
        var telemetry = new TelemetryOptionsValidator().Validate(null, Deploy.BindTelemetryOptions(env));
        Assert.True(telemetry.Succeeded, telemetry.FailureMessage);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Behind_an_ingress_the_per_address_limits_see_the_clients_address(string overlay)
    {
        // Without it, RemoteIpAddress is the ingress controller's for every client, and
        // Gateway:Limits:MaxConnectionsPerIp (100) would cap the whole deployment per ingress pod.
        var env = Deploy.GatewayEnvironment(Deploy.Render(overlay));
        Assert.True(env.TryGetValue("ASPNETCORE_FORWARDEDHEADERS_ENABLED", out var forwarded) && forwarded.Value == "true",
            "Set ASPNETCORE_FORWARDEDHEADERS_ENABLED=true: the gateway runs behind an ingress.");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_grace_period_outlasts_the_preStop_sleep_and_the_drain(string overlay)
    {
        var manifests = Deploy.Render(overlay);
        var pod = manifests.Single("Deployment", Deploy.AppName).Json.At("spec", "template", "spec");
        var gateway = Deploy.GatewayContainer(manifests);

        var drain = Deploy.BindGatewayOptions(Deploy.GatewayEnvironment(manifests)).Drain.Timeout;
        var preStop = Deploy.PreStopSleep(gateway);
        var grace = TimeSpan.FromSeconds(pod.At("terminationGracePeriodSeconds").GetInt32());

        Assert.True(preStop >= TimeSpan.FromSeconds(5), $"preStop sleeps {preStop}: too short for endpoint removal to reach the load balancers.");
        // After the drain, the gateway sends its close notices (2 s at most) and the host stops.
        var margin = TimeSpan.FromSeconds(5);
        Assert.True(grace >= preStop + drain + margin,
            $"terminationGracePeriodSeconds ({grace.TotalSeconds} s) must exceed the preStop sleep ({preStop.TotalSeconds} s) + Gateway:Drain:Timeout ({drain.TotalSeconds} s) + {margin.TotalSeconds} s, or the kubelet kills the gateway mid-drain.");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_container_runs_as_non_root_on_a_read_only_root_filesystem(string overlay)
    {
        var manifests = Deploy.Render(overlay);
        foreach (var deployment in manifests.OfKind("Deployment"))
        {
            var pod = deployment.Json.At("spec", "template", "spec");
            foreach (var container in pod.At("containers").EnumerateArray())
            {
                var what = $"{deployment.Name}/{container.At("name").GetString()}";
                var security = container.TryGetProperty("securityContext", out var s) ? s : default;
                Assert.True(Deploy.Flag(security, "runAsNonRoot") ?? Deploy.Flag(pod.OptionalPath("securityContext"), "runAsNonRoot") ?? false, $"{what}: runAsNonRoot");
                Assert.True(Deploy.Flag(security, "readOnlyRootFilesystem") ?? false, $"{what}: readOnlyRootFilesystem");
                Assert.False(Deploy.Flag(security, "allowPrivilegeEscalation") ?? true, $"{what}: allowPrivilegeEscalation must be false");
                Assert.Contains("ALL", security.At("capabilities", "drop").EnumerateArray().Select(c => c.GetString()));
            }
        }

        // The gateway runs as the image's user, and .NET gets a writable /tmp.
        var gatewayPod = manifests.Single("Deployment", Deploy.AppName).Json.At("spec", "template", "spec");
        var gateway = Deploy.GatewayContainer(manifests);
        var uid = gateway.OptionalPath("securityContext").OptionalPath("runAsUser") is { ValueKind: JsonValueKind.Number } own
            ? own : gatewayPod.OptionalPath("securityContext").OptionalPath("runAsUser");
        if (uid.ValueKind == JsonValueKind.Number)
        {
            Assert.Equal(Dockerfile.AppUid, uid.GetInt32());
        }

        Assert.Contains(Dockerfile.Load().User, new[] { "$APP_UID", "${APP_UID}", Dockerfile.AppUid.ToString(CultureInfo.InvariantCulture) });
        var tmp = Assert.Single(gateway.At("volumeMounts").EnumerateArray(), mount => mount.At("mountPath").GetString() == "/tmp");
        var volume = Assert.Single(gatewayPod.At("volumes").EnumerateArray(), v => v.At("name").GetString() == tmp.At("name").GetString());
        Assert.True(volume.TryGetProperty("emptyDir", out _), "/tmp must be an emptyDir: the root filesystem is read-only.");
    }

    [Fact]
    public void Dev_points_the_gateway_at_its_in_cluster_Redis()
    {
        var manifests = Deploy.Render("dev");
        var env = Deploy.GatewayEnvironment(manifests);
        Assert.True(env.TryGetValue("Gateway__Redis__Configuration", out var redis) && redis.Value is not null, "dev must set Gateway__Redis__Configuration in its ConfigMap.");

        var endpoint = Assert.IsType<DnsEndPoint>(Assert.Single(StackExchange.Redis.ConfigurationOptions.Parse(redis.Value!).EndPoints));
        var service = manifests.Single("Service", endpoint.Host).Json;
        var port = Assert.Single(service.At("spec", "ports").EnumerateArray(), p => p.At("port").GetInt32() == endpoint.Port);

        var redisDeployment = Assert.Single(manifests.OfKind("Deployment"), d => Deploy.Selects(service.At("spec", "selector"), d.Json.At("spec", "template", "metadata", "labels")));
        var container = Assert.Single(redisDeployment.Json.At("spec", "template", "spec", "containers").EnumerateArray());
        Assert.Equal(6379, Deploy.ResolvePort(container, port.At("targetPort")));
        Assert.StartsWith("redis:", container.At("image").GetString());
    }

    [Fact]
    public void Prod_reads_Redis_from_a_Secret_and_runs_none_of_its_own()
    {
        var manifests = Deploy.Render("prod");
        var env = Deploy.GatewayEnvironment(manifests);
        Assert.True(env.TryGetValue("Gateway__Redis__Configuration", out var redis), "prod must set Gateway__Redis__Configuration.");
        Assert.Null(redis.Value);
        Assert.NotNull(redis.Secret);
        Assert.Equal(Deploy.AppName + "-redis", redis.Secret.Value.Name);
        Assert.False(string.IsNullOrEmpty(redis.Secret.Value.Key));

        Assert.DoesNotContain(manifests.OfKind("ConfigMap"), map => map.Json.OptionalPath("data").OptionalPath("Gateway__Redis__Configuration").ValueKind != JsonValueKind.Undefined);
        Assert.Empty(manifests.OfKind("Secret")); // it holds a password: never in the repository
        Assert.Single(manifests.OfKind("Deployment"));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Several_replicas_share_a_Redis(string overlay)
    {
        var manifests = Deploy.Render(overlay);
        var maxReplicas = manifests.Single("HorizontalPodAutoscaler", Deploy.AppName).Json.At("spec", "maxReplicas").GetInt32();
        if (maxReplicas > 1)
        {
            Assert.True(Deploy.GatewayEnvironment(manifests).ContainsKey("Gateway__Redis__Configuration"),
                $"{overlay} may run {maxReplicas} gateways, which need a shared Redis (README, \"Scale out\").");
        }
    }

    [Fact]
    public void The_Gateway_API_example_pins_the_hub_and_keeps_WebSockets_open()
    {
        var service = Deploy.Render("prod").Single("Service", Deploy.AppName).Json;
        var route = Deploy.ReadExample("gateway-api-httproute.yaml").Single("HTTPRoute", Deploy.AppName).Json;
        var rules = route.At("spec", "rules").EnumerateArray().ToList();

        foreach (var rule in rules)
        {
            foreach (var backend in rule.At("backendRefs").EnumerateArray())
            {
                Assert.Equal(Deploy.AppName, backend.At("name").GetString());
                Assert.Contains(service.At("spec", "ports").EnumerateArray(), p => p.At("port").GetInt32() == backend.At("port").GetInt32());
            }

            var timeout = Deploy.GatewayApiDuration(rule.At("timeouts", "request").GetString()!);
            Assert.True(timeout == TimeSpan.Zero || timeout >= Deploy.ProxyActivityTimeout(), $"A request timeout of {timeout} cuts predictions the gateway still waits for.");
        }

        var hub = Assert.Single(rules, rule => rule.At("matches").EnumerateArray().Any(m => m.At("path", "value").GetString() == PredictionHub.Path));
        Assert.Equal("Cookie", hub.At("sessionPersistence", "type").GetString());
        var hubTimeout = Deploy.GatewayApiDuration(hub.At("timeouts", "request").GetString()!);
        Assert.True(hubTimeout == TimeSpan.Zero || hubTimeout >= TimeSpan.FromHours(1), "WebSockets to the hub need no request timeout (0s) or one of an hour at least.");

        // REST and Socket.IO never need affinity: any pod takes any request.
        Assert.Single(rules, rule => rule.TryGetProperty("sessionPersistence", out _));
    }

    [Fact]
    public void The_ingress_nginx_example_pins_the_hub_with_a_cookie_and_keeps_WebSockets_open()
    {
        var service = Deploy.Render("prod").Single("Service", Deploy.AppName).Json;
        var options = Deploy.BindGatewayOptions(Deploy.GatewayEnvironment(Deploy.Render("prod")));
        var ingresses = Deploy.ReadExample("ingress-nginx.yaml").OfKind("Ingress").ToList();
        Assert.NotEmpty(ingresses);

        Manifest? hub = null;
        foreach (var ingress in ingresses)
        {
            var annotations = ingress.Json.At("metadata", "annotations");
            string? Annotation(string name) => annotations.OptionalPath("nginx.ingress.kubernetes.io/" + name).ValueKind == JsonValueKind.String
                ? annotations.At("nginx.ingress.kubernetes.io/" + name).GetString() : null;

            Assert.True(int.Parse(Annotation("proxy-read-timeout") ?? "60", CultureInfo.InvariantCulture) >= 3600, $"{ingress.Name}: proxy-read-timeout must be 3600 s at least for WebSockets.");
            Assert.True(int.Parse(Annotation("proxy-send-timeout") ?? "60", CultureInfo.InvariantCulture) >= 3600, $"{ingress.Name}: proxy-send-timeout must be 3600 s at least for WebSockets.");

            foreach (var path in ingress.Json.At("spec", "rules").EnumerateArray().SelectMany(r => r.At("http", "paths").EnumerateArray()))
            {
                var backend = path.At("backend", "service");
                Assert.Equal(Deploy.AppName, backend.At("name").GetString());
                Assert.Contains(service.At("spec", "ports").EnumerateArray(), p => p.At("name").GetString() == backend.At("port", "name").GetString());
                if (path.At("path").GetString() == PredictionHub.Path)
                {
                    hub = ingress;
                    Assert.Equal("cookie", Annotation("affinity"));
                }
                else
                {
                    Assert.Null(Annotation("affinity"));
                }

                // nginx must admit the bodies the gateway takes, or it answers 413 first.
                var limit = path.At("path").GetString() == PredictionHub.Path
                    ? options.Limits.MaxHubMessageBytes
                    : Math.Max(options.Limits.MaxRequestBodyBytes, options.Proxy.MaxPredictionBodyBytes);
                Assert.True(Deploy.NginxSize(Annotation("proxy-body-size") ?? "1m") >= limit,
                    $"{ingress.Name}: proxy-body-size must admit {limit} bytes, the gateway's own limit for {path.At("path").GetString()}.");
            }
        }

        Assert.NotNull(hub);
    }
}

/// <summary>
/// The Dockerfile's build runs here as it would in <c>docker build</c>: the same context
/// (.dockerignore), its restore and publish commands, then the published gateway with the image's
/// environment, checked by the image's own HEALTHCHECK command. A publish keeps both cores busy
/// for a while, so it runs alone, after the tests that run in parallel.
/// </summary>
[Collection(DockerImageBuild.Name)]
public sealed class DockerImageTests(PublishedGateway published) : IClassFixture<PublishedGateway>
{
    [Fact]
    public void The_publish_holds_the_gateway_and_nothing_of_the_tests()
    {
        var files = Directory.GetFiles(published.Output, "*", SearchOption.AllDirectories)
            .Select(file => Path.GetRelativePath(published.Output, file).Replace('\\', '/'))
            .ToList();

        Assert.Contains("TromAi.Gateway.dll", files);
        Assert.Contains("TromAi.Gateway.runtimeconfig.json", files);
        Assert.Contains("appsettings.json", files);
        Assert.DoesNotContain(files, file => Regex.IsMatch(file, @"(Tests|Bench|xunit|testhost|TestPlatform|Microsoft\.NET\.Test)", RegexOptions.IgnoreCase));
        Assert.DoesNotContain(files, file => file.Contains("node_modules/", StringComparison.Ordinal) || file.StartsWith("Playground/", StringComparison.Ordinal));
        Assert.DoesNotContain(published.Context, entry => entry.StartsWith("Gateway.Tests/", StringComparison.Ordinal) || entry.StartsWith(".git/", StringComparison.Ordinal));

        // The playground's npm step ran in the build (the reason the build stage installs Node.js).
        using var assembly = new PEReader(File.OpenRead(Path.Combine(published.Output, "TromAi.Gateway.dll")));
        var metadata = assembly.GetMetadataReader();
        var resources = metadata.ManifestResources.Select(handle => metadata.GetString(metadata.GetManifestResource(handle).Name)).ToList();
        Assert.Contains("TromAi.Gateway.Playground.signalr.min.js", resources);
    }

    [Fact]
    public async Task The_image_listens_on_every_interface_and_its_HEALTHCHECK_passes()
    {
        var dockerfile = Dockerfile.Load();
        var port = Deploy.FreePort();
        var env = new Dictionary<string, string>(dockerfile.Environment)
        {
            // The image's Urls, on a free port: what `docker run` gets, less the fixed 8080.
            ["Urls"] = dockerfile.Environment["Urls"].Replace($":{dockerfile.ListenPort}", $":{port}", StringComparison.Ordinal),
        };

        var gateway = new ProcessStartInfo("dotnet", [Path.Combine(published.Output, dockerfile.EntryPointDll)])
        {
            WorkingDirectory = published.Output,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in env)
        {
            gateway.Environment[key] = value;
        }

        // Liveness must not depend on TROM.AI, so none runs.
        gateway.Environment["Gateway__Upstream__BaseUrl"] = $"http://127.0.0.1:{Deploy.FreePort()}";
        gateway.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        var output = new StringBuilder();
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var process = Process.Start(gateway)!;
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data is not null && Regex.Match(e.Data, @"Now listening on: (\S+)") is { Success: true } match)
            {
                listening.TrySetResult(match.Groups[1].Value);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // appsettings.json's Urls is http://localhost:8080: the image's setting must outrank it,
            // or the gateway would answer only inside its own container.
            Assert.Contains(address, new[] { $"http://[::]:{port}", $"http://0.0.0.0:{port}" });

            var (healthy, healthOutput) = await dockerfile.RunHealthCheckAsync(env);
            Assert.True(healthy == 0, $"HEALTHCHECK exited {healthy} against the running gateway: {healthOutput}");
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        var (stopped, _) = await dockerfile.RunHealthCheckAsync(env);
        Assert.NotEqual(0, stopped);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DockerImageBuild
{
    public const string Name = "Docker image build";
}

/// <summary>Publishes the gateway once, as the Dockerfile's build stage does, from the files the build context would hold.</summary>
public sealed class PublishedGateway : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tromai-gateway-publish-" + Guid.NewGuid().ToString("N"));

    public string Output => Path.Combine(_root, "app");

    /// <summary>The build context: paths relative to the repository root.</summary>
    public IReadOnlyList<string> Context { get; private set; } = [];

    public async Task InitializeAsync()
    {
        try
        {
            var source = Path.Combine(_root, "src");
            Context = DockerContext.Copy(Deploy.RepoRoot, source);
            foreach (var command in Dockerfile.Load().BuildCommands)
            {
                // The build stage's `dotnet restore` and `dotnet publish`, with /app in a temporary folder.
                var script = Regex.Replace(command, @"(?<=\s)/app(?=\s|$)", Output);
                var (exit, output) = await Deploy.RunAsync("bash", ["-c", script], source, timeout: TimeSpan.FromMinutes(5));
                Assert.True(exit == 0, $"`{script}` failed ({exit}):\n{output}");
            }
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }
}

/// <summary>A rendered Kubernetes object.</summary>
public sealed record Manifest(string Kind, string Name, JsonElement Json);

/// <summary>An environment variable of the gateway container: a value, or a reference to a Secret's key.</summary>
public readonly record struct EnvValue(string? Value, (string Name, string Key)? Secret);

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
        var start = new ProcessStartInfo("kubectl", args)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = RepoRoot,
            Environment = { ["KUBECONFIG"] = "/dev/null" }, // nothing here may reach a cluster
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception)
        {
            throw new InvalidOperationException("kubectl is not installed. Run ./test.sh: it installs Debian's kubernetes-client when kubectl is missing.");
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
                throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish in 60 s.");
            }

            Assert.True(process.ExitCode == 0, $"kubectl {string.Join(' ', args)} failed ({process.ExitCode}):\n{stderr.Result}");
            return stdout.Result;
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

/// <summary>The repository's Dockerfile, read as far as these tests need: ENV, EXPOSE, USER, HEALTHCHECK, the build's RUN dotnet commands.</summary>
internal sealed class Dockerfile
{
    /// <summary>The uid of <c>app</c>, the non-root user the .NET images define (<c>APP_UID</c>).</summary>
    public const int AppUid = 1654;

    private Dockerfile(List<(string Instruction, string Arguments)> instructions)
    {
        var runtime = instructions.FindLastIndex(i => i.Instruction == "FROM");
        Assert.True(runtime > 0, "The Dockerfile should have a build stage and a runtime stage.");
        Assert.Contains("dotnet/aspnet", instructions[runtime].Arguments);
        Assert.Contains("dotnet/sdk", instructions[0].Arguments);

        var final = instructions.Skip(runtime).ToList();
        foreach (var (_, arguments) in final.Where(i => i.Instruction == "ENV"))
        {
            foreach (Match pair in Regex.Matches(arguments, @"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S*)"))
            {
                Environment[pair.Groups[1].Value] = pair.Groups[2].Value.Trim('"');
            }
        }

        Assert.True(Environment.ContainsKey("Urls"), "The image should set Urls (ASPNETCORE_URLS ranks below appsettings.json's Urls).");
        ListenPort = PortOf(Environment["Urls"]);
        Exposed = final.Where(i => i.Instruction == "EXPOSE").SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(p => p.Split('/')[0]).ToList();
        User = Assert.Single(final, i => i.Instruction == "USER").Arguments.Trim();

        var healthcheck = Assert.Single(final, i => i.Instruction == "HEALTHCHECK").Arguments;
        var command = healthcheck[(healthcheck.IndexOf("CMD ", StringComparison.Ordinal) + 4)..].Trim();
        HealthCheck = JsonSerializer.Deserialize<string[]>(command) ?? throw new InvalidOperationException("HEALTHCHECK CMD should be in exec form.");

        var entryPoint = JsonSerializer.Deserialize<string[]>(Assert.Single(final, i => i.Instruction == "ENTRYPOINT").Arguments)!;
        Assert.Equal("dotnet", entryPoint[0]);
        EntryPointDll = entryPoint[1];

        BuildCommands = instructions.Take(runtime).Where(i => i.Instruction == "RUN" && i.Arguments.StartsWith("dotnet ", StringComparison.Ordinal)).Select(i => i.Arguments).ToList();
        Assert.Contains(BuildCommands, c => c.StartsWith("dotnet publish", StringComparison.Ordinal));
    }

    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    public int ListenPort { get; }

    public List<string> Exposed { get; }

    public string User { get; }

    public string[] HealthCheck { get; }

    public string EntryPointDll { get; }

    public List<string> BuildCommands { get; }

    public static Dockerfile Load()
    {
        var instructions = new List<(string, string)>();
        var pending = new StringBuilder();
        foreach (var raw in File.ReadAllLines(Path.Combine(Deploy.RepoRoot, "Dockerfile")))
        {
            var line = raw.TrimEnd();
            if (line.TrimStart().StartsWith('#') || (pending.Length == 0 && line.Trim().Length == 0))
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                pending.Append(line[..^1]).Append(' ');
                continue;
            }

            pending.Append(line);
            var text = pending.ToString().Trim();
            pending.Clear();
            var space = text.IndexOf(' ');
            instructions.Add((text[..space].ToUpperInvariant(), text[(space + 1)..].Trim()));
        }

        return new Dockerfile(instructions);
    }

    /// <summary>The port of the first URL in a Urls value (http://+:8080;...).</summary>
    public static int PortOf(string urls)
    {
        var match = Regex.Match(urls.Split(';')[0], @":(\d+)/?$");
        Assert.True(match.Success, $"No port in Urls '{urls}'.");
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs the image's HEALTHCHECK command with the image's environment; its exit code (0: healthy).</summary>
    public Task<(int ExitCode, string Output)> RunHealthCheckAsync(IDictionary<string, string> environment) =>
        Deploy.RunAsync(HealthCheck[0], HealthCheck[1..], Path.GetTempPath(), TimeSpan.FromSeconds(10), environment);
}

/// <summary>The build context <c>docker build .</c> sends: the repository less what .dockerignore leaves out.</summary>
internal static class DockerContext
{
    /// <summary>Copies the context to <paramref name="destination"/>; returns its files, relative, with '/'.</summary>
    public static List<string> Copy(string root, string destination)
    {
        var rules = File.ReadAllLines(Path.Combine(root, ".dockerignore"))
            .Select(line => line.Trim())
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.StartsWith('!') ? (Include: true, Pattern: Clean(line[1..])) : (Include: false, Pattern: Clean(line)))
            .Select(rule => (rule.Include, rule.Pattern, Regex: new Regex("^" + ToRegex(rule.Pattern) + "$")))
            .ToList();

        bool Excluded(string path)
        {
            var excluded = false;
            foreach (var (include, _, regex) in rules)
            {
                // A pattern that matches a directory covers everything below it.
                var prefixes = path.Split('/').Select((_, i) => string.Join('/', path.Split('/').Take(i + 1)));
                if (prefixes.Any(regex.IsMatch))
                {
                    excluded = !include;
                }
            }

            return excluded;
        }

        // An excluded directory is entered only when a ! rule could bring something inside it back.
        bool MayReinclude(string directory) =>
            rules.Any(r => r.Include && (r.Pattern.StartsWith(directory + "/", StringComparison.Ordinal) || r.Pattern.IndexOfAny(['*', '?', '[']) >= 0));

        var files = new List<string>();
        void Walk(string relative)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(Path.Combine(root, relative)))
            {
                var path = relative.Length == 0 ? Path.GetFileName(entry) : relative + "/" + Path.GetFileName(entry);
                if (path == ".git")
                {
                    continue;
                }

                if (Directory.Exists(entry))
                {
                    if (!Excluded(path) || MayReinclude(path))
                    {
                        Walk(path);
                    }
                }
                else if (!Excluded(path))
                {
                    var target = Path.Combine(destination, path);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    File.Copy(entry, target);
                    files.Add(path);
                }
            }
        }

        Walk("");
        return files;

        static string Clean(string pattern) => pattern.Trim().TrimStart('/').TrimEnd('/');
    }

    private static string ToRegex(string pattern)
    {
        var regex = new StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                var slash = i + 2 < pattern.Length && pattern[i + 2] == '/';
                regex.Append(slash ? "(.*/)?" : ".*");
                i += slash ? 2 : 1;
            }
            else
            {
                regex.Append(pattern[i] switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => Regex.Escape(pattern[i].ToString()),
                });
            }
        }

        return regex.ToString();
    }
}
