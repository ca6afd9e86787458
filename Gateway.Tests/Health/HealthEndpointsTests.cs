using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Health;

public sealed class HealthEndpointsTests
{
    [Fact]
    public async Task Healthz_answers_while_the_process_runs_and_readyz_while_the_upstream_answers()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl);

        using var live = await gateway.Http.GetAsync("healthz");
        using var ready = await gateway.Http.GetAsync("readyz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Healthy", body.GetProperty("status").GetString());
        Assert.Equal("reachable", body.GetProperty("checks").GetProperty("upstream").GetProperty("data").GetProperty("replica-0").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("drain").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Readyz_is_503_without_a_reachable_upstream_and_names_no_address()
    {
        await using var gateway = await GatewayHost.StartAsync(new Uri("http://127.0.0.1:1/"), new Dictionary<string, string?>
        {
            ["Gateway:Redis:Configuration"] = "127.0.0.1:2",
        });

        using var live = await gateway.Http.GetAsync("healthz");
        using var ready = await gateway.Http.GetAsync("readyz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode); // alive all the same: restarting would not help
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var text = await ready.Content.ReadAsStringAsync();
        var checks = JsonDocument.Parse(text).RootElement.GetProperty("checks");
        Assert.Equal("Unhealthy", checks.GetProperty("upstream").GetProperty("status").GetString());
        Assert.Equal("Degraded", checks.GetProperty("redis").GetProperty("status").GetString());
        Assert.DoesNotContain("127.0.0.1", text);
    }

    [Fact]
    public async Task Readyz_stays_200_without_Redis_and_reports_it_degraded()
    {
        await using var upstream = await TestUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Redis:Configuration"] = "127.0.0.1:2",
        });

        using var ready = await gateway.Http.GetAsync("readyz");

        // Redis down is down for every instance: taking them all out of the load balancer would stop
        // what still works (their own connections, every REST call).
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var body = await ready.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Degraded", body.GetProperty("status").GetString());
        Assert.Equal("Degraded", body.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("upstream").GetProperty("status").GetString());
    }
}
