using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>The prediction request of TROM.AI's streaming guide, as a front end sends it.</summary>
public static class Predictions
{
    /// <summary>The first item of every <c>Predict</c> and <c>Resume</c> stream: its data is <c>{streamId, chatflowId, chatId}</c>.</summary>
    public const string StreamHeader = "gateway:stream";

    /// <summary>An item of a hub <c>Predict</c> stream, as a .NET client reads it.</summary>
    public sealed record Item(string Event, JsonElement Data, long Seq);

    /// <summary>
    /// Reads a <c>Predict</c> stream to its end (or its exception), within a bounded time: its items after
    /// the <c>gateway:stream</c> header, which must come first, with sequence number 0.
    /// </summary>
    public static async Task<List<Item>> ReadAllAsync(IAsyncEnumerable<Item> stream) => (await ReadWithHeaderAsync(stream)).Items;

    /// <summary>As <see cref="ReadAllAsync"/>, with the stream's id from its header.</summary>
    public static async Task<(string StreamId, List<Item> Items)> ReadWithHeaderAsync(IAsyncEnumerable<Item> stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var items = new List<Item>();
        string? streamId = null;
        await foreach (var item in stream.WithCancellation(timeout.Token))
        {
            if (streamId is null)
            {
                Assert.Equal(StreamHeader, item.Event);
                Assert.Equal(0, item.Seq);
                streamId = item.Data.GetProperty("streamId").GetString()!;
                continue;
            }

            items.Add(item);
        }

        Assert.NotNull(streamId);
        return (streamId, items);
    }

    public static readonly string[] AllEventNames = AllEvents.Expected.Select(e => e.Name).Distinct().ToArray();

    public static async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(HttpClient http, string chatflowId, object body)
    {
        using var response = await http.PostAsJsonAsync($"api/v1/prediction/{chatflowId}", body);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }
}

/// <summary>What the upstream's <c>all-events</c> chatflow emits (<c>upstream/all-events.json</c>), as a client should receive it.</summary>
public static class AllEvents
{
    public static IReadOnlyList<(string Name, string ArgsJson)> Expected { get; } = Load();

    private static List<(string, string)> Load()
    {
        using var file = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestUpstream.Directory, "all-events.json")));
        return file.RootElement.GetProperty("events").EnumerateArray()
            .Select(e => (e.GetProperty("event").GetString()!, Canonical(InlineBinary(e.GetProperty("args").GetRawText()))))
            .ToList();
    }

    /// <summary>
    /// Asserts that <paramref name="received"/> (each event's name and its arguments as a JSON array) are the
    /// expected events in order, with equal JSON values: numbers by value (<c>1e-7</c> equals <c>1E-07</c>), so
    /// values that crossed another encoding (MessagePack) compare too.
    /// </summary>
    public static void AssertReceived(IReadOnlyList<(string Name, JsonElement Args)> received)
    {
        Assert.Equal(Expected.Select(e => e.Name), received.Select(e => e.Name));
        for (var i = 0; i < Expected.Count; i++)
        {
            using var expected = JsonDocument.Parse(Expected[i].ArgsJson);
            Assert.True(
                JsonElement.DeepEquals(expected.RootElement, received[i].Args),
                $"Event {i} ({Expected[i].Name}): expected {Expected[i].ArgsJson}, received {received[i].Args.GetRawText()}.");
        }
    }

    /// <summary>A binary attachment reaches SignalR clients as its base64 string.</summary>
    private static string InlineBinary(string argsJson) =>
        System.Text.RegularExpressions.Regex.Replace(argsJson, """\{\s*"\$binary"\s*:\s*("[^"]*")\s*\}""", "$1");

    /// <summary>JSON re-written compactly, so that equal values compare equal as text.</summary>
    public static string Canonical(string json)
    {
        using var document = JsonDocument.Parse(json);
        return JsonSerializer.Serialize(document.RootElement, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}
