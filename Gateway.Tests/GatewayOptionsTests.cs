using System.Diagnostics;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests;

/// <summary>A bad setting stops start-up with a message that names the key to fix.</summary>
public sealed class GatewayOptionsTests
{
    [Theory]
    [InlineData("Gateway:Upstream:BaseUrl", "not a url", "Gateway:Upstream:BaseUrl must be an absolute http:// or https:// URL")]
    [InlineData("Gateway:Upstream:BaseUrl", "ftp://files.example/", "Gateway:Upstream:BaseUrl must be an absolute http:// or https:// URL")]
    [InlineData("Gateway:Upstream:ConnectTimeout", "ten seconds", "'Gateway:Upstream:ConnectTimeout'")]
    [InlineData("Gateway:Upstream:ConnectTimeout", "-00:00:01", "Gateway:Upstream:ConnectTimeout must be a positive time span")]
    [InlineData("Gateway:Upstream:Transport", "carrier-pigeon", "'Gateway:Upstream:Transport'")]
    [InlineData("Gateway:Upstream:WarmSockets", "-1", "Gateway:Upstream:WarmSockets must be from 0 (off) to 1000")]
    [InlineData("Gateway:Relay:MaxBacklog", "0", "Gateway:Relay:MaxBacklog must be at least 1")]
    [InlineData("Gateway:Relay:SlowClientTimeout", "00:00:00", "Gateway:Relay:SlowClientTimeout must be a positive time span")]
    [InlineData("Gateway:Relay:IdleTimeout", "-00:00:05", "Gateway:Relay:IdleTimeout must be a positive time span")]
    [InlineData("Gateway:Proxy:MaxPredictionBodyBytes", "lots", "'Gateway:Proxy:MaxPredictionBodyBytes'")]
    [InlineData("Gateway:Proxy:MaxBufferedBodyBytes", "1000", "Gateway:Proxy:MaxBufferedBodyBytes (1000) must be at least Gateway:Proxy:MaxPredictionBodyBytes")]
    [InlineData("Gateway:ForwardedHeaders:TrustedProxies:0", "the ingress", "Gateway:ForwardedHeaders:TrustedProxies:0 must be an IP address (10.1.2.3) or a CIDR network")]
    [InlineData("Gateway:ForwardedHeaders:TrustedProxies:0", "10.0.0.0/33", "Gateway:ForwardedHeaders:TrustedProxies:0 must be an IP address (10.1.2.3) or a CIDR network")]
    public async Task A_missing_or_malformed_setting_stops_start_up_naming_its_key(string key, string value, string expected)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = GatewayHost.Build(new Uri("http://127.0.0.1:1/"), new Dictionary<string, string?> { [key] = value });
            await app.StartAsync();
        });

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public async Task The_gateway_process_exits_with_the_bad_key_on_stderr_and_no_stack_trace()
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "TromAi.Gateway.dll"), "--urls", "http://127.0.0.1:0"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            Environment = { ["Gateway__Upstream__BaseUrl"] = "localhost:3000" },
        };
        using var gateway = Process.Start(start)!;
        var stdout = gateway.StandardOutput.ReadToEndAsync();
        var stderr = await gateway.StandardError.ReadToEndAsync();
        await gateway.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await stdout;

        Assert.Equal(2, gateway.ExitCode);
        Assert.Contains("Gateway:Upstream:BaseUrl must be an absolute http:// or https:// URL (got 'localhost:3000')", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }
}
