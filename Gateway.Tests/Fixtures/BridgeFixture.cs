namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>A test upstream and a gateway in front of it, shared by one test class.</summary>
public sealed class BridgeFixture : IAsyncLifetime
{
    public TestUpstream Upstream { get; private set; } = null!;

    public GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await TestUpstream.StartAsync();
        Gateway = await GatewayHost.StartAsync(Upstream.BaseUrl);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}
