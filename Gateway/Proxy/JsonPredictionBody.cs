using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A buffered JSON prediction body: where its <c>socketIOClientId</c> is, and the body rewritten around
/// it as slices of the buffer plus the new bytes. It is read as TROM.AI's own parser
/// (<c>JSON.parse</c> behind express) reads it: a UTF-8 byte order mark is skipped, nesting has no
/// limit (values are skipped token by token, never recursed into), a repeated name counts by its
/// last occurrence, and anything that is not JSON is refused.
/// </summary>
internal sealed class JsonPredictionBody
{
    private const string FieldName = "socketIOClientId";
    private const string ChatIdName = "chatId";

    /// <summary>Longer ids are nobody's (the gateway's have 25 characters, TROM.AI's 20) and are not even decoded.</summary>
    private const int MaxIdBytes = 256;

    private static readonly byte[] Bom = [0xEF, 0xBB, 0xBF];
    private static readonly byte[] Streaming = Encoding.UTF8.GetBytes("\"streaming\":true");

    private readonly ReadOnlySequence<byte> _body;

    // Where the last top-level socketIOClientId is: its name, its value, the end of the property
    // before it and the start of the one after (-1: none), and the root object's closing brace.
    private long _nameStart = -1;
    private long _valueStart;
    private long _valueEnd;
    private long _previousEnd = -1;
    private long _nextStart = -1;
    private long _closingBrace = -1;

    private JsonPredictionBody(ReadOnlySequence<byte> body) => _body = body;

    /// <summary>The id the client sent: the last top-level <c>socketIOClientId</c>, when it is a short string.</summary>
    public string? ClientId { get; private set; }

    /// <summary>The last top-level <c>chatId</c>, when it is a short string: what a kept stream names, and aborts.</summary>
    public string? ChatId { get; private set; }

    /// <exception cref="PredictionBodyException">400: not JSON.</exception>
    public static JsonPredictionBody Read(ReadOnlySequence<byte> body)
    {
        var json = new JsonPredictionBody(body);
        try
        {
            json.Scan();
        }
        catch (JsonException e)
        {
            throw PredictionBodyException.InvalidJson(e);
        }

        return json;
    }

    private void Scan()
    {
        if (_body.IsEmpty)
        {
            return; // express reads an empty body as {}: TROM.AI answers it
        }

        var offset = StartsWithBom(_body) ? Bom.Length : 0;
        // MaxDepth bounds the reader's own bookkeeping only (a bit per level): it never recurses.
        var reader = new Utf8JsonReader(_body.Slice(offset), new JsonReaderOptions { MaxDepth = int.MaxValue });
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
        }
        else
        {
            long previousEnd = -1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var nameStart = offset + reader.TokenStartIndex;
                if (_nameStart >= 0 && _nextStart < 0)
                {
                    _nextStart = nameStart;
                }

                var isId = reader.ValueTextEquals(FieldName);
                var isChatId = !isId && reader.ValueTextEquals(ChatIdName);
                reader.Read();
                if (isChatId)
                {
                    ChatId = reader.TokenType == JsonTokenType.String
                        && (reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length) <= MaxIdBytes
                        ? reader.GetString()
                        : null;
                }

                var valueStart = offset + reader.TokenStartIndex;
                string? id = null;
                if (isId && reader.TokenType == JsonTokenType.String
                    && (reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length) <= MaxIdBytes)
                {
                    id = reader.GetString();
                }

                reader.Skip();
                var valueEnd = offset + reader.BytesConsumed;
                if (isId)
                {
                    (ClientId, _nameStart, _valueStart, _valueEnd, _previousEnd, _nextStart) = (id, nameStart, valueStart, valueEnd, previousEnd, -1);
                }

                previousEnd = valueEnd;
            }

            _closingBrace = offset + reader.TokenStartIndex;
        }

        // Only whitespace may follow the root value; the reader throws on anything else.
        while (reader.Read())
        {
        }
    }

    /// <summary>The body as it came.</summary>
    public List<ForwardedBody.Part> Unchanged() => [ForwardedBody.Part.Of(_body)];

    /// <summary>The body with the id's value replaced by <paramref name="socketId"/>; every other byte as it came.</summary>
    public List<ForwardedBody.Part> Rewritten(string socketId) =>
    [
        ForwardedBody.Part.Of(_body.Slice(0, _valueStart)),
        ForwardedBody.Part.Of(JsonSerializer.SerializeToUtf8Bytes(socketId)),
        ForwardedBody.Part.Of(_body.Slice(_valueEnd)),
    ];

    /// <summary>
    /// The body for an SSE-era TROM.AI: without the id's property, and with <c>"streaming":true</c>
    /// last in the object, where it wins over any <c>streaming</c> before it, as in <c>JSON.parse</c>.
    /// </summary>
    public List<ForwardedBody.Part> Streamed()
    {
        // Take the property out with one of the commas around it.
        var (cutStart, cutEnd, alone) = _previousEnd >= 0 ? (_previousEnd, _valueEnd, false)
            : _nextStart >= 0 ? (_nameStart, _nextStart, false)
            : (_nameStart, _valueEnd, true);
        return
        [
            ForwardedBody.Part.Of(_body.Slice(0, cutStart)),
            ForwardedBody.Part.Of(_body.Slice(cutEnd, _closingBrace - cutEnd)),
            ForwardedBody.Part.Of(alone ? Streaming : [(byte)',', .. Streaming]),
            ForwardedBody.Part.Of(_body.Slice(_closingBrace)),
        ];
    }

    private static bool StartsWithBom(ReadOnlySequence<byte> body)
    {
        if (body.Length < Bom.Length)
        {
            return false;
        }

        Span<byte> first = stackalloc byte[3];
        body.Slice(0, Bom.Length).CopyTo(first);
        return first.SequenceEqual(Bom);
    }
}
