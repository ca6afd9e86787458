using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class UpstreamWebSocketTests
{
    [Theory]
    [InlineData("""451-["binaryEvent",{"_placeholder":true,"num":0}]""", "binaryEvent")]
    [InlineData("""452-/chat,["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]""", "file")]
    [InlineData("""451-12["acked",{"_placeholder":true,"num":0}]""", "acked")]
    [InlineData("""451-["with \"quote\"",{"_placeholder":true,"num":0}]""", "with \"quote\"")]
    public void Finds_the_event_name_in_a_binary_event_header(string frame, string name) =>
        Assert.Equal(name, UpstreamWebSocket.BinaryEventName(frame));

    [Theory]
    [InlineData("""42["token","45-[not binary]"]""")]
    [InlineData("2")]
    [InlineData("40{\"sid\":\"abc\"}")]
    [InlineData("451-")]
    public void Ignores_every_other_frame(string frame) => Assert.Null(UpstreamWebSocket.BinaryEventName(frame));
}
