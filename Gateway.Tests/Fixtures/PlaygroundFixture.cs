namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>A test upstream and a gateway in front of it with the playground page on, shared by one test class.</summary>
public sealed class PlaygroundFixture : IAsyncLifetime
{
    public TestUpstream Upstream { get; private set; } = null!;

    public GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await TestUpstream.StartAsync();
        Gateway = await GatewayHost.StartAsync(Upstream.BaseUrl, new Dictionary<string, string?> { ["Gateway:Playground:Enabled"] = "true" });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}
