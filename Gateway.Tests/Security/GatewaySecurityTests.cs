using System.IdentityModel.Tokens.Jwt;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.IdentityModel.Tokens;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Security;

/// <summary>Authentication, CORS and limits, each refusing with a clear status before anything reaches TROM.AI.</summary>
public sealed class GatewaySecurityTests(GatewaySecurityTests.UpstreamFixture fixture) : IClassFixture<GatewaySecurityTests.UpstreamFixture>
{
    private const string ApiKey = "gateway-key-0123456789";
    private const string SigningKey = "a-shared-signing-key-of-at-least-32-bytes!";

    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();
    }

    private TestUpstream Upstream => fixture.Upstream;

    private Task<GatewayHost> StartAsync(Dictionary<string, string?> settings) => GatewayHost.StartAsync(Upstream.BaseUrl, settings);

    private static Dictionary<string, string?> WithAuth() => new()
    {
        ["Gateway:Auth:ApiKeys:0"] = ApiKey,
        ["Gateway:Auth:Jwt:SigningKey"] = SigningKey,
        ["Gateway:Auth:Jwt:Issuer"] = "tests",
        ["Gateway:Upstream:ApiKey"] = "tromai-upstream-key",
    };

    [Fact]
    public async Task With_authentication_on_a_request_without_credentials_gets_401_and_reaches_nothing()
    {
        await using var gateway = await StartAsync(WithAuth());
        await Upstream.Http.DeleteAsync("test/requests");

        using var rest = await gateway.Http.GetAsync("api/v1/echo/x");
        using var wrongKey = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x") { Headers = { { "X-Api-Key", "nope" } } };
        using var wrong = await gateway.Http.SendAsync(wrongKey);
        var hub = await Assert.ThrowsAnyAsync<HttpRequestException>(() => HubClients.StartAsync(gateway.HubUrl));
        using var health = await gateway.Http.GetAsync("healthz");

        Assert.Equal(HttpStatusCode.Unauthorized, rest.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, hub.StatusCode);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode); // probes need no credentials
        Assert.Empty(await Upstream.RequestsAsync());
    }

    [Fact]
    public async Task An_API_key_opens_REST_and_the_hub_and_TROM_AI_gets_its_own_key_instead()
    {
        await using var gateway = await StartAsync(WithAuth());
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x") { Headers = { { "X-Api-Key", ApiKey } } };

        using var response = await gateway.Http.SendAsync(request);
        await using var connection = await HubClients.StartAsync(gateway.HubUrl, connection: options => options.AccessTokenProvider = () => Task.FromResult<string?>(ApiKey));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headers = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("headers");
        Assert.Equal("Bearer tromai-upstream-key", headers.GetProperty("authorization").GetString());
        Assert.False(headers.TryGetProperty("x-api-key", out _)); // the gateway's credentials stay at the gateway
        Assert.False(string.IsNullOrEmpty(await connection.InvokeAsync<string>("GetSocketIOClientId")));
    }

    [Fact]
    public async Task A_JWT_signed_with_the_configured_key_is_accepted_and_a_forged_one_is_not()
    {
        await using var gateway = await StartAsync(WithAuth());

        using var valid = await GetWithBearerAsync(gateway, Token(SigningKey));
        using var forged = await GetWithBearerAsync(gateway, Token("some-other-signing-key-of-32-bytes-long!"));

        Assert.Equal(HttpStatusCode.OK, valid.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
    }

    [Fact]
    public async Task With_authentication_off_the_client_s_own_TROM_AI_key_passes_unchanged()
    {
        await using var gateway = await StartAsync([]);

        using var response = await GetWithBearerAsync(gateway, "client-tromai-key");

        var headers = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("headers");
        Assert.Equal("Bearer client-tromai-key", headers.GetProperty("authorization").GetString());
    }

    [Fact]
    public async Task Only_listed_origins_get_CORS_answers_and_TROM_AI_s_own_are_not_passed_on()
    {
        await using var gateway = await StartAsync(new() { ["Gateway:Cors:AllowedOrigins:0"] = "https://app.example" });

        using var allowed = await GetWithOriginAsync(gateway, "https://app.example");
        using var other = await GetWithOriginAsync(gateway, "https://evil.example");
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "hubs/prediction/negotiate")
        {
            Headers = { { "Origin", "https://app.example" }, { "Access-Control-Request-Method", "POST" } },
        };
        using var preflighted = await gateway.Http.SendAsync(preflight);

        Assert.Equal("https://app.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("true", allowed.Headers.GetValues("Access-Control-Allow-Credentials").Single());
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.Equal("https://app.example", preflighted.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task Too_many_connections_from_one_address_get_429_and_a_full_instance_503()
    {
        await using var perIp = await StartAsync(new() { ["Gateway:Limits:MaxConnectionsPerIp"] = "2" });
        await using var full = await StartAsync(new() { ["Gateway:Limits:MaxConnections"] = "1" });

        await using var first = await HubClients.StartAsync(perIp.HubUrl);
        await using var second = await HubClients.StartAsync(perIp.HubUrl);
        var third = await Assert.ThrowsAnyAsync<Exception>(() => HubClients.StartAsync(perIp.HubUrl));
        await using var only = await HubClients.StartAsync(full.HubUrl);
        var overflow = await Assert.ThrowsAnyAsync<Exception>(() => HubClients.StartAsync(full.HubUrl));

        // Negotiation succeeds; then every transport the client tries is refused with the status.
        Assert.Equal([HttpStatusCode.TooManyRequests], HubClients.RefusalStatuses(third));
        Assert.Equal([HttpStatusCode.ServiceUnavailable], HubClients.RefusalStatuses(overflow));
    }

    [Fact]
    public async Task Request_and_connect_rates_past_the_limit_get_429_with_Retry_After()
    {
        await using var gateway = await StartAsync(new()
        {
            ["Gateway:Limits:RequestsPerIpPerSecond"] = "3",
            ["Gateway:Limits:ConnectsPerIpPerSecond"] = "2",
        });

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            using var response = await gateway.Http.GetAsync("api/v1/echo/x");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
                Assert.Contains("RequestsPerIpPerSecond", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());
            }
        }

        var connects = new List<HttpStatusCode?>();
        for (var i = 0; i < 4; i++)
        {
            try
            {
                await using var connection = await HubClients.StartAsync(gateway.HubUrl);
                connects.Add(HttpStatusCode.OK);
            }
            catch (HttpRequestException e)
            {
                connects.Add(e.StatusCode);
            }
        }

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(HttpStatusCode.OK, statuses[0]);
        Assert.Contains(HttpStatusCode.TooManyRequests, connects);
    }

    [Fact]
    public async Task A_body_over_the_request_limit_gets_413_before_it_is_forwarded()
    {
        await using var gateway = await StartAsync(new() { ["Gateway:Limits:MaxRequestBodyBytes"] = "1000" });
        await Upstream.Http.DeleteAsync("test/requests");

        using var response = await gateway.Http.PutAsync("api/v1/echo/x", new ByteArrayContent(new byte[5000]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("MaxRequestBodyBytes", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());
        Assert.Empty(await Upstream.RequestsAsync());
    }

    private static async Task<HttpResponseMessage> GetWithBearerAsync(GatewayHost gateway, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await gateway.Http.SendAsync(request);
    }

    private static async Task<HttpResponseMessage> GetWithOriginAsync(GatewayHost gateway, string origin)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x") { Headers = { { "Origin", origin } } };
        return await gateway.Http.SendAsync(request);
    }

    private static string Token(string key) => new JwtSecurityTokenHandler().WriteToken(new JwtSecurityToken(
        issuer: "tests",
        claims: [new Claim("sub", "user-1")],
        expires: DateTime.UtcNow.AddMinutes(5),
        signingCredentials: new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(key)), SecurityAlgorithms.HmacSha256)));
}
