using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

/// <summary>
/// An argument kept as the bytes it arrived in reaches a SignalR client exactly as the parsed value
/// the gateway relayed before would have: same bytes on the JSON protocol, same values on MessagePack.
/// </summary>
public sealed class RawJsonTests
{
    // The MessagePack hub protocol as the gateway registers it: its resolver writes RawJson.
    private static readonly MessagePackHubProtocolOptions GatewayMessagePack = new ServiceCollection()
        .AddSignalR().AddGatewayMessagePackProtocol().Services
        .BuildServiceProvider().GetRequiredService<IOptions<MessagePackHubProtocolOptions>>().Value;

    /// <summary>Every event of <c>all-events.json</c>, its arguments as socket.io writes them (JSON.stringify: compact, non-ASCII as is).</summary>
    public static TheoryData<string, string> AllEventArguments()
    {
        var data = new TheoryData<string, string>();
        using var file = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestUpstream.Directory, "all-events.json")));
        var index = 0;
        foreach (var e in file.RootElement.GetProperty("events").EnumerateArray())
        {
            data.Add($"{index++}:{e.GetProperty("event").GetString()}", Compact(e.GetProperty("args")));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(AllEventArguments))]
    public void The_json_hub_protocol_writes_raw_arguments_byte_for_byte_as_it_writes_parsed_ones(string name, string argsJson)
    {
        var (raw, parsed) = Arguments(argsJson);

        var rawMessage = Write(new JsonHubProtocol(), new InvocationMessage(name, raw));
        var parsedMessage = Write(new JsonHubProtocol(), new InvocationMessage(name, parsed));

        Assert.Equal(Encoding.UTF8.GetString(parsedMessage), Encoding.UTF8.GetString(rawMessage));
    }

    [Theory]
    [MemberData(nameof(AllEventArguments))]
    public void The_messagepack_hub_protocol_writes_raw_arguments_as_the_values_a_json_parser_gives(string name, string argsJson)
    {
        var (raw, parsed) = Arguments(argsJson);
        var typed = parsed.Select(arg => Typed((JsonElement)arg!)).ToArray();
        var protocol = new MessagePackHubProtocol(Options.Create(GatewayMessagePack));

        var rawMessage = Write(protocol, new InvocationMessage(name, raw));
        var typedMessage = Write(protocol, new InvocationMessage(name, typed));

        Assert.Equal(AsJson(typedMessage), AsJson(rawMessage));
    }

    [Fact]
    public void A_raw_argument_is_copied_not_re_encoded()
    {
        // A spelling no serializer would choose: proof that the bytes pass through untouched.
        var raw = new RawJson("\"caf\\u00e9 \\/ ok\""u8.ToArray());

        var message = Encoding.UTF8.GetString(Write(new JsonHubProtocol(), new InvocationMessage("token", [raw])));

        Assert.Contains("\"arguments\":[\"caf\\u00e9 \\/ ok\"]", message);
    }

    [Fact]
    public void Escaped_strings_and_deep_values_transcode_to_messagepack_like_their_parsed_form()
    {
        var json = """{"a\"b":["x\u00e9\n",{"k":[[],{},null,false,-1.5e300,18446744073709551615]}],"":""}""";
        var (raw, parsed) = Arguments("[" + json + "]");
        var protocol = new MessagePackHubProtocol(Options.Create(GatewayMessagePack));

        Assert.Equal(
            AsJson(Write(protocol, new InvocationMessage("deep", [Typed((JsonElement)parsed[0]!)]))),
            AsJson(Write(protocol, new InvocationMessage("deep", raw))));
    }

    private static (object?[] Raw, object?[] Parsed) Arguments(string argsJson)
    {
        using var document = JsonDocument.Parse(argsJson);
        var items = document.RootElement.EnumerateArray().ToList();
        return (
            items.Select(item => (object?)new RawJson(Encoding.UTF8.GetBytes(item.GetRawText()))).ToArray(),
            items.Select(item => (object?)item.Clone()).ToArray());
    }

    private static byte[] Write(IHubProtocol protocol, HubMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>();
        protocol.WriteMessage(message, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A MessagePack hub message (after its length prefix) as JSON: the values a client decodes. MessagePack
    /// lets an integer be written in more than one width, so equal values need not be equal bytes.
    /// </summary>
    private static string AsJson(byte[] message)
    {
        var prefix = 0;
        while ((message[prefix++] & 0x80) != 0)
        {
        }

        return MessagePack.MessagePackSerializer.ConvertToJson(message.AsMemory(prefix));
    }

    private static string Compact(JsonElement args) =>
        JsonSerializer.Serialize(InlineBinary(args), new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    /// <summary>A <c>{"$binary": base64}</c> reaches clients as that base64 string.</summary>
    private static JsonElement InlineBinary(JsonElement value) =>
        JsonDocument.Parse(System.Text.RegularExpressions.Regex.Replace(value.GetRawText(), """\{\s*"\$binary"\s*:\s*("[^"]*")\s*\}""", "$1")).RootElement;

    /// <summary>The CLR value a JSON parser gives (integers as long, other numbers as double), which MessagePack writes natively.</summary>
    private static object? Typed(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => value.EnumerateObject().Aggregate(new Dictionary<string, object?>(), (map, p) =>
        {
            map[p.Name] = Typed(p.Value);
            return map;
        }),
        JsonValueKind.Array => value.EnumerateArray().Select(Typed).ToArray(),
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number when value.TryGetInt64(out var integer) => integer,
        JsonValueKind.Number when value.TryGetUInt64(out var unsigned) => unsigned,
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };
}
