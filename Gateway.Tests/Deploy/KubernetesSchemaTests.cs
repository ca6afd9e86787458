using System.Text.Json;
using System.Text.Json.Nodes;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>
/// What deploy/ renders, and each ingress example, is what a cluster accepts: every object valid
/// against its API's schema (<see cref="KubernetesSchemas"/>), checked offline, so a wrong type, a
/// missing required field or a malformed quantity fails here rather than at <c>kubectl apply</c>.
/// </summary>
public sealed class KubernetesSchemaTests
{
    public static TheoryData<string> Sources => new()
    {
        "overlays/dev",
        "overlays/prod",
        "ingress/gateway-api-httproute.yaml",
        "ingress/ingress-nginx.yaml",
    };

    [Theory]
    [MemberData(nameof(Sources))]
    public void Every_object_is_valid_against_its_Kubernetes_schema(string source)
    {
        var manifests = source.StartsWith("overlays/", StringComparison.Ordinal)
            ? Deploy.Render(source["overlays/".Length..])
            : Deploy.ReadExample(source["ingress/".Length..]);

        var results = KubernetesSchemas.Validate(manifests.Select(m => m.Json));

        // Every object was checked, none skipped for want of a schema.
        Assert.Equal(manifests.Select(m => $"{m.Kind}/{m.Name}"), results.Select(r => $"{r.Kind}/{r.Name}"));
        Assert.True(results.TrueForAll(r => r.Errors.Count == 0), string.Join("\n", results.Where(r => r.Errors.Count > 0)));
    }

    [Fact]
    public void An_object_a_cluster_would_refuse_fails_the_check_naming_the_field()
    {
        var prod = Deploy.Render("prod");
        var route = Deploy.ReadExample("gateway-api-httproute.yaml").Single("HTTPRoute", Deploy.AppName);
        JsonElement Broken(Manifest manifest, Action<JsonNode> breakIt)
        {
            var node = JsonNode.Parse(manifest.Json.GetRawText())!;
            breakIt(node);
            return JsonSerializer.SerializeToElement(node);
        }

        var deployment = prod.Single("Deployment", Deploy.AppName);
        var results = KubernetesSchemas.Validate(
        [
            Broken(deployment, d => d["spec"]!["template"]!["spec"]!["containers"]![0]!["ports"]![0]!["containerPort"] = "8080"),
            Broken(deployment, d => d["spec"]!["template"]!["spec"]!["containers"]![0]!["resources"]!["requests"]!["cpu"] = "half a core"),
            Broken(prod.Single("HorizontalPodAutoscaler", Deploy.AppName), hpa => hpa["spec"]!.AsObject().Remove("scaleTargetRef")),
            Broken(route, r => r["spec"]!["rules"]![0]!["timeouts"]!["request"] = "1 hour"),
            Broken(deployment, d => d["apiVersion"] = "apps/v2"),
            deployment.Json,
        ]);

        Assert.Collection(results,
            port => Assert.Contains("/spec/template/spec/containers/0/ports/0/containerPort must be integer", port.Errors),
            cpu => Assert.Contains(cpu.Errors, e => e.StartsWith("/spec/template/spec/containers/0/resources/requests/cpu ", StringComparison.Ordinal)),
            hpa => Assert.Contains("/spec must have required property scaleTargetRef", hpa.Errors),
            timeout => Assert.Contains(timeout.Errors, e => e.StartsWith("/spec/rules/0/timeouts/request must match pattern", StringComparison.Ordinal)),
            unknown => Assert.Contains("no schema for apiVersion apps/v2, kind Deployment", Assert.Single(unknown.Errors)),
            untouched => Assert.Empty(untouched.Errors));
    }
}
