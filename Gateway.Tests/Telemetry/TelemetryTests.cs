using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>The telemetry tests share one test upstream; each starts gateways of its own, fresh.</summary>
[CollectionDefinition(Collection)]
public sealed class TelemetryTests : ICollectionFixture<TelemetryTests.UpstreamFixture>
{
    public const string Collection = "Telemetry";

    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();

        public Task<GatewayHost> StartGatewayAsync(IDictionary<string, string?>? settings = null) => GatewayHost.StartAsync(Upstream.BaseUrl, settings);
    }
}
