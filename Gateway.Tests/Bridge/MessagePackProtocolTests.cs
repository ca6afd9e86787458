using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Tests.Infrastructure;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// A .NET client that chooses MessagePack (<c>.AddMessagePackProtocol()</c>) gets what a JSON client gets, each
/// JSON value as its natural MessagePack value.
/// </summary>
public sealed class MessagePackProtocolTests(BridgeFixture bridge) : IClassFixture<BridgeFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Every_upstream_event_reaches_a_MessagePack_client_equal_to_what_the_JSON_protocol_delivers()
    {
        var (json, jsonEvents, jsonId) = await HubClients.ConnectAndListenAsync(bridge.Gateway.HubUrl, Predictions.AllEventNames);
        await using var _ = json;
        await using var messagePack = HubClients.Create(bridge.Gateway.HubUrl, hub => hub.AddMessagePackProtocol());
        var received = new List<(string Name, object?[] Args)>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // As a .NET user reads them untyped: each handler declares the arguments its event carries, as object.
        foreach (var (name, arity) in AllEvents.Expected.Select(e => (e.Name, JsonDocument.Parse(e.ArgsJson).RootElement.GetArrayLength())).Distinct())
        {
            messagePack.On(name, Enumerable.Repeat(typeof(object), arity).ToArray(), (args, _) =>
            {
                lock (received)
                {
                    received.Add((name, args));
                    if (received.Count == AllEvents.Expected.Count)
                    {
                        all.TrySetResult();
                    }
                }

                return Task.CompletedTask;
            }, received);
        }

        await messagePack.StartAsync();
        var messagePackId = await messagePack.InvokeAsync<string>("GetSocketIOClientId");

        await Task.WhenAll(
            Predictions.PostAsync(bridge.Gateway.Http, "all-events", new { question = "Hi", socketIOClientId = jsonId }),
            Predictions.PostAsync(bridge.Gateway.Http, "all-events", new { question = "Hi", socketIOClientId = messagePackId }));
        await jsonEvents.WaitForAsync(events => events.Count >= AllEvents.Expected.Count, Timeout);
        await all.Task.WaitAsync(Timeout);

        var overJson = jsonEvents.Snapshot().Select(e => (e.Name, Args: JsonSerializer.SerializeToElement(e.Args))).ToList();
        var overMessagePack = received.Select(e => (e.Name, Args: JsonSerializer.SerializeToElement(e.Args))).ToList();
        AllEvents.AssertReceived(overJson);
        AllEvents.AssertReceived(overMessagePack);
        Assert.All(overJson.Zip(overMessagePack), pair => Assert.True(JsonElement.DeepEquals(pair.First.Args, pair.Second.Args), $"{pair.First.Name}: {pair.First.Args.GetRawText()} over JSON, {pair.Second.Args.GetRawText()} over MessagePack"));

        // Natural values, no JSON text in between: strings are strings, objects maps, arrays arrays, integers integers.
        Assert.Equal("Hel", Assert.IsType<string>(received.First(e => e.Name == "token").Args[0]));
        var document = Assert.IsType<Dictionary<object, object?>>(Assert.Single(Assert.IsType<object[]>(received.First(e => e.Name == "sourceDocuments").Args[0])));
        var metadata = Assert.IsType<Dictionary<object, object?>>(document["metadata"]);
        Assert.True(IsInteger(metadata["page"]));
        Assert.Equal(0.8125, metadata["score"]);
        var numbers = received.First(e => e.Name == "numbers").Args;
        Assert.Equal(3.14159, numbers[0]);
        Assert.True(numbers[1..4].All(IsInteger), "9007199254740991, -12 and 0 are MessagePack integers");
        Assert.Equal(1e-7, numbers[4]);
        Assert.Equal("AAEC+v8=", Assert.IsType<Dictionary<object, object?>>(received.First(e => e.Name == "binaryEvent").Args[0])["data"]);
        Assert.IsType<string>(received.First(e => e.Name == "agentReasoningJson").Args[0]); // JSON text sent as a string stays one
        Assert.Empty(received.First(e => e.Name == "noArgs").Args);
        Assert.Equal(3, received.First(e => e.Name == "brandNewEvent").Args.Length);
    }

    [Fact]
    public async Task Predict_over_MessagePack_yields_the_same_items_and_result_as_over_JSON()
    {
        await using var json = await HubClients.StartAsync(bridge.Gateway.HubUrl);
        await using var messagePack = await HubClients.StartAsync(bridge.Gateway.HubUrl, hub => hub.AddMessagePackProtocol());
        var chatId = Guid.NewGuid().ToString();

        var overJson = await Predictions.ReadAllAsync(json.StreamAsync<Predictions.Item>("Predict", "all-events", new { question = "Hi", chatId }));
        var overMessagePack = await ReadAllAsync(messagePack.StreamAsync<Dictionary<string, object?>>("Predict", "all-events",
            new { question = "Hi", chatId, overrideConfig = new { temperature = 0.5, stop = new[] { "\n" } } }));

        // Each item is the map {event, data, seq}, as {event, data, seq} is the object on JSON; the header first.
        Assert.All(overMessagePack, item => Assert.Equal(["data", "event", "seq"], item.Keys.Order(StringComparer.Ordinal)));
        Assert.Equal(Predictions.StreamHeader, overMessagePack[0]["event"]);
        overMessagePack.RemoveAt(0);
        Assert.Equal(overJson.Select(i => i.Seq), overMessagePack.Select(i => Convert.ToInt64(i["seq"], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(overJson.Select(i => i.Event), overMessagePack.Select(i => (string)i["event"]!));
        Assert.Equal("result", overJson[^1].Event);
        for (var i = 0; i < overJson.Count - 1; i++)
        {
            var data = JsonSerializer.SerializeToElement(overMessagePack[i]["data"]);
            Assert.True(JsonElement.DeepEquals(overJson[i].Data, data), $"{overJson[i].Event}: {overJson[i].Data.GetRawText()} over JSON, {data.GetRawText()} over MessagePack");
        }

        var answer = Assert.IsType<Dictionary<object, object?>>(overMessagePack[^1]["data"]);
        Assert.Equal("Hello", answer["text"]);
        Assert.Equal(chatId, answer["chatId"]);
        Assert.Equal(overJson[^1].Data.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal), answer.Keys.Cast<string>().Order(StringComparer.Ordinal));
        // The request, a MessagePack map, reached TROM.AI as the same JSON.
        var forwarded = (await bridge.Upstream.RequestsAsync()).Last(r => (string?)r!["path"] == "/api/v1/prediction/all-events")!;
        Assert.Equal(0.5, (double)forwarded["body"]!["overrideConfig"]!["temperature"]!);
        Assert.Equal("\n", (string?)forwarded["body"]!["overrideConfig"]!["stop"]![0]);
    }

    [Fact]
    public async Task A_Predict_request_with_no_JSON_form_fails_that_call_and_the_connection_goes_on()
    {
        await using var messagePack = await HubClients.StartAsync(bridge.Gateway.HubUrl, hub => hub.AddMessagePackProtocol());

        var failed = await Assert.ThrowsAsync<HubException>(() => ReadAllAsync(messagePack.StreamAsync<Dictionary<string, object?>>("Predict", "all-events", double.NaN)));
        var items = await ReadAllAsync(messagePack.StreamAsync<Dictionary<string, object?>>("Predict", "all-events", new { question = "Hi" }));

        // SignalR's own answer to arguments that do not bind (the reason is in the gateway's debug log).
        Assert.Equal("Failed to invoke 'Predict' due to an error on the server.", failed.Message);
        Assert.Equal("result", items[^1]["event"]);
        Assert.Equal(HubConnectionState.Connected, messagePack.State);
    }

    private static async Task<List<T>> ReadAllAsync<T>(IAsyncEnumerable<T> stream)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var items = new List<T>();
        await foreach (var item in stream.WithCancellation(timeout.Token))
        {
            items.Add(item);
        }

        return items;
    }

    private static bool IsInteger(object? value) => value is sbyte or byte or short or ushort or int or uint or long or ulong;
}
