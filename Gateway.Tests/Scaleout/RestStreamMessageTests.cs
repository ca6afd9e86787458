using System.Text;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Scaleout;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>What instances tell each other about a REST stream kept across them arrives whole, and anything else is refused.</summary>
public sealed class RestStreamMessageTests
{
    private const string StreamId = "st-AAAAAAAAAAAAAAAAAAAAAA";

    [Fact]
    public void A_begin_arrives_with_everything_the_recording_instance_needs()
    {
        var clientId = SocketIOClientIds.New();

        var begin = RestStreamMessage.Read(RestStreamMessage.Begin(StreamId, clientId, "flow", "chat-1", "host-1234abcd"));

        Assert.Equal(new RestStreamMessage(RestStreamMessage.BeginKind, StreamId, clientId, "flow", "chat-1", "host-1234abcd"), begin);
    }

    [Theory]
    [InlineData("""{"answer":"yes"}""")]
    [InlineData("null")]
    public void An_end_carries_the_answer_s_bytes_unchanged(string json)
    {
        var end = RestStreamMessage.Read(RestStreamMessage.End(StreamId, new RestAnswer(Encoding.UTF8.GetBytes(json), null)));

        Assert.Equal(json, Encoding.UTF8.GetString(end!.ToAnswer().Answer.Span));
        Assert.Null(end.ToAnswer().Error);
    }

    [Fact]
    public void An_end_without_an_answer_carries_why()
    {
        var end = RestStreamMessage.Read(RestStreamMessage.End(StreamId, RestAnswer.Failed("TROM.AI said no.")));

        Assert.Equal("TROM.AI said no.", end!.ToAnswer().Error);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"kind":"begun"}""")]
    [InlineData("""{"kind":"begun","streamId":"st-short"}""")]
    [InlineData("""{"kind":"begin","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA","socketIOClientId":"gw-AAAAAAAAAAAAAAAAAAAAAA","chatflowId":"tokens"}""")]
    [InlineData("""{"kind":"begin","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA","socketIOClientId":"not-ours","chatflowId":"tokens","replyTo":"b"}""")]
    [InlineData("""{"kind":"begin","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA","socketIOClientId":"gw-AAAAAAAAAAAAAAAAAAAAAA","chatflowId":"../x","replyTo":"b"}""")]
    [InlineData("""{"kind":"refused","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""")]
    [InlineData("""{"kind":"end","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""")]
    [InlineData("""{"kind":"end","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA","answer":"e30=","error":"both"}""")]
    [InlineData("""{"kind":"other","streamId":"st-AAAAAAAAAAAAAAAAAAAAAA"}""")]
    public void A_message_missing_or_misshaping_a_field_is_refused(string json)
    {
        Assert.Null(RestStreamMessage.Read(Encoding.UTF8.GetBytes(json)));
    }
}
