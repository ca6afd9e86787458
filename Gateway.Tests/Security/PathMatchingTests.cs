using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Security;

/// <summary>
/// Limits and routing see a path as ASP.NET Core routing does (any case, a trailing slash): a spelling
/// that routing maps to the hub or to a probe is limited as the hub or the probe, and anything under
/// the hub's path that is not the hub's stays at the gateway.
/// </summary>
public sealed class PathMatchingTests(PathMatchingTests.UpstreamFixture fixture) : IClassFixture<PathMatchingTests.UpstreamFixture>
{
    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();
    }

    private static readonly string[] NegotiateSpellings =
        ["hubs/prediction/negotiate", "hubs/prediction/NEGOTIATE", "hubs/prediction/negotiate/", "HUBS/Prediction/Negotiate/"];

    [Fact]
    public async Task Every_spelling_that_routing_takes_for_negotiate_negotiates()
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl);

        foreach (var path in NegotiateSpellings)
        {
            using var response = await gateway.Http.PostAsync(path + "?negotiateVersion=1", content: null);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(response.StatusCode == HttpStatusCode.OK, path);
            Assert.True(body.TryGetProperty("connectionToken", out _), path);
        }
    }

    [Fact]
    public async Task Every_spelling_of_negotiate_counts_against_the_connect_rate()
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Limits:ConnectsPerIpPerSecond"] = "1",
        });

        foreach (var path in NegotiateSpellings)
        {
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 5; i++)
            {
                using var response = await gateway.Http.PostAsync(path + "?negotiateVersion=1", content: null);
                statuses.Add(response.StatusCode);
            }

            Assert.True(statuses.Contains(HttpStatusCode.TooManyRequests), $"{path}: {string.Join(", ", statuses)}");
        }
    }

    [Theory]
    [InlineData("healthz")]
    [InlineData("HEALTHZ")]
    [InlineData("healthz/")]
    [InlineData("ReadyZ/")]
    public async Task The_probes_in_any_spelling_routing_takes_are_never_limited(string path)
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Limits:RequestsPerIpPerSecond"] = "1",
        });

        for (var i = 0; i < 5; i++)
        {
            using var response = await gateway.Http.GetAsync(path);
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{path}: {response.StatusCode}");
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType); // the gateway's probe answered
        }
    }

    [Theory]
    [InlineData("healthz/x")]
    [InlineData("readyz/x")]
    public async Task A_path_below_a_probe_is_not_a_probe_and_is_limited_like_any_request(string path)
    {
        await using var rated = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Limits:RequestsPerIpPerSecond"] = "1",
        });
        await using var sized = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Limits:MaxRequestBodyBytes"] = "1000",
        });

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++)
        {
            using var response = await rated.Http.GetAsync(path);
            statuses.Add(response.StatusCode);
        }

        using var large = await sized.Http.PutAsync(path, new ByteArrayContent(new byte[5000]));

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
    }

    [Theory]
    [InlineData("GET", "hubs/prediction/x")]
    [InlineData("POST", "hubs/prediction/x")]
    [InlineData("GET", "Hubs/Prediction/anything/below")]
    [InlineData("POST", "hubs/prediction/negotiate/x")]
    public async Task A_path_under_the_hub_that_is_not_the_hub_s_gets_404_from_the_gateway_and_never_reaches_TROM_AI(string method, string path)
    {
        await using var gateway = await GatewayHost.StartAsync(fixture.Upstream.BaseUrl);

        using var response = await gateway.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        // TROM.AI would have answered its web UI (GET) or its own 404 page: this is the gateway's answer.
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(404, body.GetProperty("statusCode").GetInt32());
        Assert.False(body.GetProperty("success").GetBoolean());
        Assert.Contains("SignalR hub", body.GetProperty("message").GetString());
    }
}
