using Microsoft.Extensions.Options;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>A bad <c>Gateway:Redis</c> setting stops start-up with a message that names its key, before anything waits on Redis.</summary>
public sealed class RedisSettingsTests
{
    [Theory]
    [InlineData("Gateway:Redis:Configuration", "127.0.0.1:6379,connectTimeout=soon", "Gateway:Redis:Configuration is not a valid StackExchange.Redis configuration")]
    [InlineData("Gateway:Redis:KeyPrefix", " ", "Gateway:Redis:KeyPrefix must be a non-empty name without spaces")]
    [InlineData("Gateway:Redis:KeyPrefix", "my gateway", "Gateway:Redis:KeyPrefix must be a non-empty name without spaces (got 'my gateway')")]
    [InlineData("Gateway:Redis:SessionTtl", "00:00:00.500", "Gateway:Redis:SessionTtl must be at least 00:00:01")]
    [InlineData("Gateway:Redis:SessionTtl", "soon", "'Gateway:Redis:SessionTtl'")]
    [InlineData("Gateway:Redis:OperationTimeout", "00:00:00", "Gateway:Redis:OperationTimeout must be a positive time span")]
    public async Task A_bad_Redis_setting_stops_start_up_naming_its_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { ["Gateway:Redis:Configuration"] = "127.0.0.1:1", [key] = value };

        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = GatewayHost.Build(new Uri("http://127.0.0.1:1/"), settings);
            await app.StartAsync();
        });

        Assert.Contains(expected, error.Message);
    }
}
