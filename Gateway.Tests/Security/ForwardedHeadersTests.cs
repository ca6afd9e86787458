using Microsoft.AspNetCore.Http.Connections.Client;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Security;

/// <summary>
/// With forwarded headers on (<c>ASPNETCORE_FORWARDEDHEADERS_ENABLED</c>), <c>X-Forwarded-For</c> names
/// the client only when it comes from a proxy in <c>Gateway:ForwardedHeaders:TrustedProxies</c>; from
/// anyone else it is ignored, so a client cannot pick the address its per-IP limits count against.
/// </summary>
public sealed class ForwardedHeadersTests(ForwardedHeadersTests.UpstreamFixture fixture) : IClassFixture<ForwardedHeadersTests.UpstreamFixture>
{
    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();
    }

    private Task<GatewayHost> StartAsync(string trustedProxy) => GatewayHost.StartAsync(fixture.Upstream.BaseUrl, new Dictionary<string, string?>
    {
        // What ASPNETCORE_FORWARDEDHEADERS_ENABLED=true sets.
        ["FORWARDEDHEADERS_ENABLED"] = "true",
        ["Gateway:ForwardedHeaders:TrustedProxies:0"] = trustedProxy,
        ["Gateway:Limits:MaxConnectionsPerIp"] = "1",
    });

    [Fact]
    public async Task A_client_that_is_not_a_trusted_proxy_cannot_choose_its_address()
    {
        // The test client connects from 127.0.0.1, outside the trusted network (a documentation range).
        await using var gateway = await StartAsync("192.0.2.0/24");

        await using var first = await HubClients.StartAsync(gateway.HubUrl, Spoofing("203.0.113.1"));
        var second = await Assert.ThrowsAnyAsync<Exception>(() => HubClients.StartAsync(gateway.HubUrl, Spoofing("203.0.113.2")));
        var seen = await ForwardedForAsync(gateway, "203.0.113.3");

        Assert.Equal([HttpStatusCode.TooManyRequests], HubClients.RefusalStatuses(second)); // both count as 127.0.0.1
        Assert.Equal("127.0.0.1", seen);
    }

    [Fact]
    public async Task A_trusted_proxy_names_the_client()
    {
        await using var gateway = await StartAsync("127.0.0.1");

        await using var first = await HubClients.StartAsync(gateway.HubUrl, Spoofing("203.0.113.1"));
        await using var second = await HubClients.StartAsync(gateway.HubUrl, Spoofing("203.0.113.2"));
        var seen = await ForwardedForAsync(gateway, "203.0.113.3");

        Assert.Equal("203.0.113.3", seen);
    }

    private static Action<HttpConnectionOptions> Spoofing(string address) =>
        options => options.Headers["X-Forwarded-For"] = address;

    /// <summary>The client address TROM.AI is told about, for a request that claims <paramref name="address"/>.</summary>
    private static async Task<string?> ForwardedForAsync(GatewayHost gateway, string address)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/echo/x") { Headers = { { "X-Forwarded-For", address } } };
        using var response = await gateway.Http.SendAsync(request);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("headers").GetProperty("x-forwarded-for").GetString();
    }
}
