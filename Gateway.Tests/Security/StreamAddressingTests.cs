using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Security;

/// <summary>Who may address a hub connection's stream: only with the id the hub hands out, and with authentication on, only its own principal.</summary>
public sealed class StreamAddressingTests(StreamAddressingTests.UpstreamFixture fixture) : IClassFixture<StreamAddressingTests.UpstreamFixture>
{
    private const string KeyOfA = "gateway-key-of-client-a-0123";
    private const string KeyOfB = "gateway-key-of-client-b-4567";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public sealed class UpstreamFixture : IAsyncLifetime
    {
        public TestUpstream Upstream { get; private set; } = null!;

        public async Task InitializeAsync() => Upstream = await TestUpstream.StartAsync();

        public async Task DisposeAsync() => await Upstream.DisposeAsync();
    }

    private TestUpstream Upstream => fixture.Upstream;

    [Fact]
    public async Task The_id_to_send_is_not_the_SignalR_connection_id_and_the_connection_id_addresses_nothing()
    {
        await using var gateway = await GatewayHost.StartAsync(Upstream.BaseUrl);
        var client = await ConnectAsync(gateway, key: null);
        await using var _ = client.Connection;
        var connectionId = client.Connection.ConnectionId!;

        var (byConnectionId, _) = await PredictAsync(gateway, key: null, "byConnectionId", connectionId);
        var (byIssuedId, _) = await PredictAsync(gateway, key: null, "byIssuedId", client.Id);

        Assert.StartsWith("gw-", client.Id);
        Assert.NotEqual(connectionId, client.Id);
        Assert.Equal(HttpStatusCode.OK, byConnectionId);
        Assert.Equal(HttpStatusCode.OK, byIssuedId);
        await client.Events.WaitForAsync(e => e.Any(x => x.Name == "token" && x.Args[0].GetString() == "byIssuedId"), Timeout);
        // The connection id went to TROM.AI untouched, where no socket has it: nothing was streamed for it.
        Assert.DoesNotContain(client.Events.Snapshot(), e => e.Args.Count > 0 && e.Args[0].ValueKind == JsonValueKind.String && e.Args[0].GetString() == "byConnectionId");
        Assert.Equal(connectionId, await ForwardedSocketIdAsync("byConnectionId"));
    }

    [Fact]
    public async Task Negotiate_version_0_where_the_connection_id_is_the_transport_token_is_refused()
    {
        await using var gateway = await GatewayHost.StartAsync(Upstream.BaseUrl);

        using var v0 = await gateway.Http.PostAsync("hubs/prediction/negotiate?negotiateVersion=0", content: null);
        using var v1 = await gateway.Http.PostAsync("hubs/prediction/negotiate?negotiateVersion=1", content: null);

        var refused = await v0.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(refused.TryGetProperty("connectionId", out _), refused.ToString());
        Assert.Contains("version", refused.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        var accepted = await v1.Content.ReadFromJsonAsync<JsonElement>();
        Assert.NotEqual(accepted.GetProperty("connectionId").GetString(), accepted.GetProperty("connectionToken").GetString());
    }

    [Fact]
    public async Task With_authentication_on_a_prediction_reaches_only_a_connection_of_the_same_principal()
    {
        await using var gateway = await GatewayHost.StartAsync(Upstream.BaseUrl, new Dictionary<string, string?>
        {
            ["Gateway:Auth:ApiKeys:0"] = KeyOfA,
            ["Gateway:Auth:ApiKeys:1"] = KeyOfB,
        });
        var b = await ConnectAsync(gateway, KeyOfB);
        await using var _ = b.Connection;

        var (fromA, _) = await PredictAsync(gateway, KeyOfA, "fromA", b.Id);
        var (fromB, _) = await PredictAsync(gateway, KeyOfB, "fromB", b.Id);

        Assert.Equal(HttpStatusCode.OK, fromA);
        Assert.Equal(HttpStatusCode.OK, fromB);
        await b.Events.WaitForAsync(e => e.Any(x => x.Name == "token" && x.Args[0].GetString() == "fromB"), Timeout);
        // A's prediction went on with B's id untouched, which names no upstream socket: B saw nothing of it,
        // and B's own answer, which came after it on the same socket, is the first token B got.
        Assert.Equal("fromB", b.Events.Snapshot().First(e => e.Name == "token").Args[0].GetString());
        Assert.Equal(b.Id, await ForwardedSocketIdAsync("fromA"));
    }

    private static async Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAsync(GatewayHost gateway, string? key)
    {
        var connection = new HubConnectionBuilder()
            .WithUrl(gateway.HubUrl, options => options.AccessTokenProvider = () => Task.FromResult(key))
            .Build();
        var events = new EventRecorder();
        connection.On<string>("token", token => events.Record("token", [token]));
        await connection.StartAsync();
        return (connection, events, await connection.InvokeAsync<string>("GetSocketIOClientId"));
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> PredictAsync(GatewayHost gateway, string? key, string question, string socketIOClientId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/prediction/echo-question")
        {
            Content = JsonContent.Create(new { question, socketIOClientId }),
        };
        if (key is not null)
        {
            request.Headers.Add("X-Api-Key", key);
        }

        using var response = await gateway.Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    /// <summary>The <c>socketIOClientId</c> TROM.AI received with the prediction asking <paramref name="question"/>.</summary>
    private async Task<string?> ForwardedSocketIdAsync(string question)
    {
        var requests = await Upstream.RequestsAsync();
        var prediction = requests.Last(r => (string?)r!["body"]?["question"] == question)!;
        return (string?)prediction["body"]!["socketIOClientId"];
    }
}
