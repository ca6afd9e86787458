using System.Buffers;
using System.Net;
using System.Text;
using TromAi.Gateway.Proxy;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>
/// Where the rewrite finds <c>socketIOClientId</c> in a JSON body and what it forwards, read as
/// <c>JSON.parse</c> reads it: the last of repeated names counts, escapes are names too, nesting is
/// unbounded, a byte order mark is skipped; every byte the rewrite does not change is forwarded as it came.
/// </summary>
public sealed class JsonPredictionBodyTests
{
    [Theory]
    [InlineData("""{"question":"q","socketIOClientId":"gw-1"}""", "gw-1")]
    [InlineData("""{"socketIOClient\u0049d":"gw-1"}""", "gw-1")]
    [InlineData("""{"socketIOClientId":"gw-\u0031"}""", "gw-1")]
    [InlineData("""{"socketIOClientId":"old","x":{"socketIOClientId":"nested"},"socketIOClientId":"gw-2"}""", "gw-2")]
    [InlineData("""{"socketIOClientId":"gw-1","socketIOClientId":5}""", null)]
    [InlineData("""{"question":"q"}""", null)]
    [InlineData("""["socketIOClientId","gw-1"]""", null)]
    [InlineData("", null)]
    public void The_id_is_the_last_top_level_socketIOClientId_string(string json, string? expected) =>
        Assert.Equal(expected, JsonPredictionBody.Read(Bytes(json)).ClientId);

    [Fact]
    public void A_byte_order_mark_is_skipped_and_forwarded()
    {
        var body = Bytes("\uFEFF{\"socketIOClientId\":\"gw-1\"}");

        var json = JsonPredictionBody.Read(body);

        Assert.Equal("gw-1", json.ClientId);
        Assert.Equal("\uFEFF{\"socketIOClientId\":\"S\"}", Forwarded(json.Rewritten("S")));
    }

    [Fact]
    public void Nesting_far_deeper_than_64_is_read_without_recursion()
    {
        var deep = string.Concat(Enumerable.Repeat("[", 100_000)) + string.Concat(Enumerable.Repeat("]", 100_000));

        var json = JsonPredictionBody.Read(Bytes($$"""{"history":{{deep}},"socketIOClientId":"gw-1"}"""));

        Assert.Equal("gw-1", json.ClientId);
    }

    [Theory]
    [InlineData("""{"question":"q","socketIOClientId":"gw-1","chatId":"c"}""", """{"question":"q","socketIOClientId":"S","chatId":"c"}""")]
    [InlineData("""{ "socketIOClientId" : "gw-1" , "n": [1, 2] }""", """{ "socketIOClientId" : "S" , "n": [1, 2] }""")]
    [InlineData("""{"socketIOClientId":"old","socketIOClientId":"gw-1"}""", """{"socketIOClientId":"old","socketIOClientId":"S"}""")]
    public void Rewritten_replaces_the_id_s_value_and_nothing_else(string json, string expected) =>
        Assert.Equal(expected, Forwarded(JsonPredictionBody.Read(Bytes(json)).Rewritten("S")));

    [Theory]
    [InlineData("""{"question":"q","socketIOClientId":"gw-1"}""", """{"question":"q","streaming":true}""")]
    [InlineData("""{"socketIOClientId":"gw-1","question":"q"}""", """{"question":"q","streaming":true}""")]
    [InlineData("""{"a":1,"socketIOClientId":"gw-1","b":2}""", """{"a":1,"b":2,"streaming":true}""")]
    [InlineData("""{ "socketIOClientId" : "gw-1" }""", """{  "streaming":true}""")]
    [InlineData("""{"streaming":false,"socketIOClientId":"gw-1"}""", """{"streaming":false,"streaming":true}""")]
    public void Streamed_drops_the_id_and_ends_the_object_with_streaming_true(string json, string expected) =>
        Assert.Equal(expected, Forwarded(JsonPredictionBody.Read(Bytes(json)).Streamed()));

    [Theory]
    [InlineData("""{"question":"Hi"} trailing""")]
    [InlineData("""{"question":"Hi",}""")]
    [InlineData("""{"question":"Hi" /* comment */}""")]
    [InlineData("""{"question":""")]
    [InlineData("\uFEFF")]
    public void What_is_not_JSON_is_refused_with_400(string json)
    {
        var refusal = Assert.Throws<PredictionBodyException>(() => JsonPredictionBody.Read(Bytes(json)));

        Assert.Equal(HttpStatusCode.BadRequest, refusal.Status);
        Assert.StartsWith("The prediction body is not valid JSON", refusal.Message);
    }

    private static ReadOnlySequence<byte> Bytes(string text) => new(Encoding.UTF8.GetBytes(text));

    private static string Forwarded(List<ForwardedBody.Part> parts)
    {
        var bytes = new List<byte>();
        foreach (var part in parts)
        {
            Assert.Null(part.Source);
            bytes.AddRange(part.Bytes.ToArray());
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }
}
