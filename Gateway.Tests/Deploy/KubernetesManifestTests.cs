using System.Globalization;
using System.Net;
using System.Text.Json;
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
        // ...and believes those headers only from the ingress: from anyone else they would let a client choose its address.
        Assert.True(env.TryGetValue("Gateway__ForwardedHeaders__TrustedProxies__0", out var trusted) && trusted.Value?.Contains('/') == true,
            "Set Gateway__ForwardedHeaders__TrustedProxies__0 to the ingress controller's pod network.");
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
