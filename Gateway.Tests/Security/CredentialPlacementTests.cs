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

/// <summary>
/// A credential in a URL ends up in logs and browser history: the gateway takes one from the
/// <c>access_token</c> query only where a browser has no other way, the hub's WebSocket and SSE
/// requests. Everything else (REST, negotiate, long polling) sends headers, as SignalR's clients do.
/// </summary>
public sealed class CredentialPlacementTests(CredentialPlacementTests.UpstreamFixture fixture) : IClassFixture<CredentialPlacementTests.UpstreamFixture>
{
    private const string ApiKey = "gateway-key-0123456789";
    private const string SigningKey = "a-shared-signing-key-of-at-least-32-bytes!";

    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();
    }

    private Task<GatewayHost> StartAsync() => GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
    {
        ["Gateway:Auth:ApiKeys:0"] = ApiKey,
        ["Gateway:Auth:Jwt:SigningKey"] = SigningKey,
        ["Gateway:Auth:Jwt:Issuer"] = "tests",
    });

    [Fact]
    public async Task A_key_or_token_in_the_query_of_a_REST_call_is_not_a_credential()
    {
        await using var gateway = await StartAsync();
        await fixture.Upstream.Http.DeleteAsync("test/requests");

        using var byKey = await gateway.Http.GetAsync($"api/v1/echo/x?access_token={ApiKey}");
        using var byJwt = await gateway.Http.GetAsync($"api/v1/echo/x?access_token={Token()}");
        using var inHeader = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x") { Headers = { { "X-Api-Key", ApiKey } } };
        using var byHeader = await gateway.Http.SendAsync(inHeader);

        Assert.Equal(HttpStatusCode.Unauthorized, byKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, byJwt.StatusCode);
        Assert.Equal(HttpStatusCode.OK, byHeader.StatusCode);
    }

    [Fact]
    public async Task Negotiate_and_long_polling_take_credentials_from_headers_only()
    {
        await using var gateway = await StartAsync();

        using var negotiateByQuery = await gateway.Http.PostAsync($"hubs/prediction/negotiate?negotiateVersion=1&access_token={ApiKey}", content: null);
        var token = await NegotiateAsync(gateway);
        using var pollByQuery = await gateway.Http.GetAsync($"hubs/prediction?id={token}&access_token={ApiKey}");
        using var pollByHeader = new HttpRequestMessage(HttpMethod.Get, $"hubs/prediction?id={token}") { Headers = { { "X-Api-Key", ApiKey } } };
        using var polled = await gateway.Http.SendAsync(pollByHeader);

        Assert.Equal(HttpStatusCode.Unauthorized, negotiateByQuery.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, pollByQuery.StatusCode);
        Assert.Equal(HttpStatusCode.OK, polled.StatusCode);
    }

    [Fact]
    public async Task The_hub_s_WebSocket_and_SSE_requests_take_the_key_from_the_query_as_browsers_send_it()
    {
        await using var gateway = await StartAsync();

        await using var overWebSocket = await HubClients.StartAsync(new Uri(gateway.HubUrl, $"?access_token={ApiKey}"), HubClients.SkipNegotiation);
        var token = await NegotiateAsync(gateway);
        using var sse = new HttpRequestMessage(HttpMethod.Get, $"hubs/prediction?id={token}&access_token={ApiKey}") { Headers = { Accept = { new MediaTypeWithQualityHeaderValue("text/event-stream") } } };
        using var events = await gateway.Http.SendAsync(sse, HttpCompletionOption.ResponseHeadersRead);

        Assert.False(string.IsNullOrEmpty(await overWebSocket.InvokeAsync<string>("GetSocketIOClientId")));
        Assert.Equal(HttpStatusCode.OK, events.StatusCode);
        Assert.Equal("text/event-stream", events.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Negotiates with the key in a header, as SignalR clients do; returns the connection token.</summary>
    private static async Task<string> NegotiateAsync(GatewayHost gateway)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "hubs/prediction/negotiate?negotiateVersion=1") { Headers = { { "X-Api-Key", ApiKey } } };
        using var response = await gateway.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("connectionToken").GetString()!;
    }

    private static string Token() => new JwtSecurityTokenHandler().WriteToken(new JwtSecurityToken(
        issuer: "tests",
        claims: [new Claim("sub", "user-1")],
        expires: DateTime.UtcNow.AddMinutes(5),
        signingCredentials: new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(SigningKey)), SecurityAlgorithms.HmacSha256)));
}
