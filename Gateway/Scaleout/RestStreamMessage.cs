using System.Text.Json;
using System.Text.Json.Serialization;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// What instances tell each other about a REST stream kept across them (<see cref="RedisRestStreams"/>):
/// <c>begin</c> and <c>end</c> go to the instance holding the hub connection, <c>begun</c> and
/// <c>refused</c> back to the one forwarding the POST (<see cref="ReplyTo"/>).
/// </summary>
/// <param name="Answer">On <c>end</c>: TROM.AI's answer, as the REST caller got it; null when <see cref="Error"/> says why there is none.</param>
/// <param name="Error">On <c>end</c>: why the stream ends without an answer; on <c>refused</c>: why it could not begin.</param>
internal sealed record RestStreamMessage(
    string Kind, string StreamId, string? SocketIOClientId = null, string? ChatflowId = null, string? ChatId = null, string? ReplyTo = null,
    byte[]? Answer = null, string? Error = null)
{
    public const string BeginKind = "begin";
    public const string BegunKind = "begun";
    public const string RefusedKind = "refused";
    public const string EndKind = "end";

    // An instance id is the host name and a few hex digits (SessionDirectory); this is ample.
    private const int MaxInstanceIdLength = 300;

    public static byte[] Begin(string streamId, string socketIOClientId, string chatflowId, string? chatId, string replyTo) =>
        Write(new(BeginKind, streamId, socketIOClientId, chatflowId, chatId, replyTo));

    public static byte[] Begun(string streamId) => Write(new(BegunKind, streamId));

    public static byte[] Refused(string streamId, string reason) => Write(new(RefusedKind, streamId, Error: reason));

    // The answer's bytes as they are (base64 in the message): parsing them again to carry them as JSON would cost a
    // parse on each side and turn a JSON null answer into no answer.
    public static byte[] End(string streamId, RestAnswer answer) =>
        Write(answer.Error is { } error ? new(EndKind, streamId, Error: error) : new(EndKind, streamId, Answer: answer.Answer.ToArray()));

    /// <summary>The end as the instance recording the stream applies it.</summary>
    public RestAnswer ToAnswer() => Error is { } error ? RestAnswer.Failed(error) : new RestAnswer(Answer, null);

    /// <summary>The message, or null when the bytes are not a well-formed one (another version of the gateway, say).</summary>
    public static RestStreamMessage? Read(ReadOnlyMemory<byte> bytes)
    {
        RestStreamMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(bytes.Span, RestStreamMessageJson.Default.RestStreamMessage);
        }
        catch (JsonException)
        {
            return null;
        }

        return message is not null && StreamIds.IsStreamId(message.StreamId) && message.IsComplete() ? message : null;
    }

    private bool IsComplete() => Kind switch
    {
        BeginKind => SocketIOClientId is not null && SocketIOClientIds.IsGatewayId(SocketIOClientId) && UpstreamUrls.IsPathSegment(ChatflowId) && IsInstanceId(ReplyTo),
        BegunKind => true,
        RefusedKind => Error is not null,
        EndKind => (Answer is null) != (Error is null),
        _ => false,
    };

    private static bool IsInstanceId(string? id) =>
        !string.IsNullOrEmpty(id) && id.Length <= MaxInstanceIdLength && !id.Any(char.IsControl);

    private static byte[] Write(RestStreamMessage message) => JsonSerializer.SerializeToUtf8Bytes(message, RestStreamMessageJson.Default.RestStreamMessage);
}

[JsonSerializable(typeof(RestStreamMessage))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class RestStreamMessageJson : JsonSerializerContext;
