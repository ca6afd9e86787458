using System.Buffers;
using System.Text;
using System.Text.Json;
using MessagePack;
using MessagePack.Resolvers;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// JSON values on the hub's MessagePack protocol: each becomes the MessagePack value a client expects, with no
/// JSON text in between, and MessagePack sent to the hub reads back as the same JSON.
/// </summary>
public sealed class JsonMessagePackTranscoderTests
{
    // The hub's own serializer options, as the gateway registers them.
    private static readonly MessagePackSerializerOptions Hub = new ServiceCollection()
        .AddSignalR().AddGatewayMessagePackProtocol().Services
        .BuildServiceProvider().GetRequiredService<IOptions<MessagePackHubProtocolOptions>>().Value.SerializerOptions;

    // What a .NET client that reads arguments as object gets (SignalR's default: contractless).
    private static readonly MessagePackSerializerOptions Client = MessagePackSerializerOptions.Standard.WithResolver(ContractlessStandardResolver.Instance);

    [Fact]
    public void A_string_travels_as_a_MessagePack_str_of_its_UTF8_bytes_not_as_JSON_text()
    {
        var bytes = MessagePackSerializer.Serialize(Json("\"Hel\""), Hub);

        Assert.Equal([0xa3, (byte)'H', (byte)'e', (byte)'l'], bytes);
    }

    [Fact]
    public void Writing_event_arguments_allocates_nothing()
    {
        var formatter = Hub.Resolver.GetFormatterWithVerify<JsonElement>();
        var token = Json("\"Hel\"");
        var escaped = Json("\"a\\\"b\\u00e9\"");
        var documents = Json("""[{"pageContent":"TROM.AI streams tokens.","metadata":{"source":"guide.md","page":3,"score":0.8125}}]""");
        var output = new ArrayBufferWriter<byte>(4096);
        void Write()
        {
            output.ResetWrittenCount();
            var writer = new MessagePackWriter(output);
            formatter.Serialize(ref writer, token, Hub);
            formatter.Serialize(ref writer, escaped, Hub);
            formatter.Serialize(ref writer, documents, Hub);
            writer.Flush();
        }

        for (var i = 0; i < 5_000; i++)
        {
            Write(); // the pools' first rentals, and the JIT's tiers
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 40_000; i++)
        {
            Write();
        }

        // Nothing per write: one object per write would be a megabyte; the runtime allocates a few bytes once.
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1024, $"{allocated} bytes allocated in 40,000 writes");
    }

    [Fact]
    public void Each_JSON_value_becomes_its_natural_MessagePack_value()
    {
        var element = Json("""
            {"text":"é ✓","escaped":"a\"b\u00e9\n","small":42,"negative":-12,"safe":9007199254740991,"huge":18446744073709551615,
             "pi":3.14159,"tiny":1e-7,"whole":2.0,"yes":true,"no":false,"nothing":null,"list":[1,[],{}],"empty":{}}
            """);

        var value = (Dictionary<object, object?>)MessagePackSerializer.Deserialize<object>(MessagePackSerializer.Serialize(element, Hub), Client)!;

        Assert.Equal(14, value.Count);
        Assert.Equal("é ✓", value["text"]);
        Assert.Equal("a\"bé\n", value["escaped"]);
        Assert.Equal(42L, Convert.ToInt64(value["small"]));
        Assert.Equal(-12L, Convert.ToInt64(value["negative"]));
        Assert.Equal(9007199254740991L, Convert.ToInt64(value["safe"]));
        Assert.Equal(ulong.MaxValue, value["huge"]);
        Assert.All(new[] { "small", "negative", "safe" }, key => Assert.True(IsInteger(value[key]), $"{key} is a MessagePack int"));
        Assert.Equal(3.14159, value["pi"]);
        Assert.Equal(1e-7, value["tiny"]);
        Assert.Equal(2.0, value["whole"]); // a JSON number with a fraction stays a float
        Assert.Equal(true, value["yes"]);
        Assert.Equal(false, value["no"]);
        Assert.Null(value["nothing"]);
        var list = Assert.IsType<object[]>(value["list"]);
        Assert.Equal(1L, Convert.ToInt64(list[0]));
        Assert.Empty(Assert.IsType<object[]>(list[1]));
        Assert.Empty(Assert.IsType<Dictionary<object, object?>>(list[2]));
        Assert.Empty(Assert.IsType<Dictionary<object, object?>>(value["empty"]));
    }

    [Fact]
    public void Nested_and_wide_values_keep_every_count_and_read_back_as_the_same_JSON()
    {
        // Deeper (60 levels) and wider than the first buffers the counting pass rents, within JsonDocument's 64.
        var json = new StringBuilder();
        for (var depth = 0; depth < 40; depth++)
        {
            json.Append(depth % 2 == 0 ? """{"a":[1,"x",""" : "[");
        }

        json.Append(string.Join(',', Enumerable.Range(0, 300).Select(i => $$"""{"k{{i}}":[{{i}},{{i}}.5,null]}""")));
        for (var depth = 39; depth >= 0; depth--)
        {
            json.Append(depth % 2 == 0 ? "]}" : "]");
        }

        var element = Json(json.ToString());

        var roundTripped = MessagePackSerializer.Deserialize<JsonElement>(MessagePackSerializer.Serialize(element, Hub), Hub);

        Assert.True(JsonElement.DeepEquals(element, roundTripped));
    }

    [Fact]
    public void Pre_serialized_JSON_bytes_give_the_same_MessagePack_as_the_parsed_element()
    {
        var utf8 = """ {"event":"usedTools","args":[[{"tool":"calculator","toolInput":{"a":1,"b":2.5}}]], "é":"\u00e9"} """u8.ToArray();
        var fromBytes = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(fromBytes);

        JsonMessagePackTranscoder.Write(ref writer, utf8);
        writer.Flush();

        Assert.Equal(MessagePackSerializer.Serialize(JsonDocument.Parse(utf8).RootElement, Hub), fromBytes.WrittenSpan.ToArray());
    }

    [Fact]
    public void A_Predict_request_sent_as_MessagePack_reads_as_the_same_JSON()
    {
        var request = new Dictionary<string, object?>
        {
            ["question"] = "Hi ✓",
            ["overrideConfig"] = new Dictionary<string, object?> { ["temperature"] = 0.5, ["maxTokens"] = 200, ["stop"] = new object?[] { "\n", null } },
            ["history"] = Array.Empty<object>(),
            ["streaming"] = true,
            ["ratio"] = 0.1f,
        };

        var element = MessagePackSerializer.Deserialize<JsonElement>(MessagePackSerializer.Serialize(request, Client), Hub);

        Assert.True(JsonElement.DeepEquals(
            Json("""{"question":"Hi ✓","overrideConfig":{"temperature":0.5,"maxTokens":200,"stop":["\n",null]},"history":[],"streaming":true,"ratio":0.1}"""),
            element), element.GetRawText());
    }

    [Fact]
    public void Binary_reads_as_base64_a_timestamp_as_ISO_8601_and_integer_keys_as_names()
    {
        var request = new Dictionary<object, object?>
        {
            ["file"] = new byte[] { 0, 1, 2, 250, 255 },
            ["at"] = new DateTime(2026, 12, 2, 10, 30, 0, DateTimeKind.Utc),
            [7] = "seven",
        };

        var element = MessagePackSerializer.Deserialize<JsonElement>(MessagePackSerializer.Serialize(request, Client), Hub);

        Assert.Equal("AAEC+v8=", element.GetProperty("file").GetString());
        Assert.Equal("2026-12-02T10:30:00Z", element.GetProperty("at").GetString());
        Assert.Equal("seven", element.GetProperty("7").GetString());
    }

    [Theory]
    [InlineData(new byte[] { 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0 }, "NaN")]                     // float64 NaN
    [InlineData(new byte[] { 0x81, 0xc4, 0x01, 0x00, 0x01 }, "map key")]                         // {bin: 1}
    [InlineData(new byte[] { 0xd4, 0x05, 0x00 }, "has no JSON form")]                             // extension type 5
    public void MessagePack_without_a_JSON_form_is_refused_with_a_message_that_says_why(byte[] messagePack, string reason)
    {
        var failure = Assert.Throws<MessagePackSerializationException>(() => MessagePackSerializer.Deserialize<JsonElement>(messagePack, Hub));

        Assert.Contains(reason, (failure.InnerException ?? failure).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gateway_notice_has_the_same_keys_as_on_the_JSON_protocol()
    {
        var notice = new GatewayEvents.UpstreamRestoredNotice(Attempts: 3, DowntimeMs: 1250);

        var value = (Dictionary<object, object?>)MessagePackSerializer.Deserialize<object>(MessagePackSerializer.Serialize<object>(notice, Hub), Client)!;

        Assert.Equal(["attempts", "downtimeMs"], value.Keys.Cast<string>().Order(StringComparer.Ordinal));
        Assert.Equal(3L, Convert.ToInt64(value["attempts"]));
        Assert.Equal(1250L, Convert.ToInt64(value["downtimeMs"]));
    }

    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    private static bool IsInteger(object? value) => value is sbyte or byte or short or ushort or int or uint or long or ulong;
}
