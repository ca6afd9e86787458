using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The answer of a prediction the gateway streamed over SSE on a client's behalf, built from the
/// events as they pass, in the shape of TROM.AI's non-streaming answer, so a REST caller cannot tell
/// that the gateway streamed: <c>text</c> (the <c>token</c>s joined), then what <c>metadata</c> carried
/// (<c>question, chatId, chatMessageId, sessionId, memoryType, followUpPrompts, flowVariables</c>, and
/// whatever a later version adds), then <c>sourceDocuments, usedTools, fileAnnotations,
/// agentReasoning, artifacts, action</c> when those events came.
/// <para>
/// What a caller answers, by outcome: <see cref="Error"/> set: the flow failed (TROM.AI sends an
/// <c>error</c> event with HTTP 200, even for an unauthorised call), answer in TROM.AI's error shape;
/// else <see cref="Ended"/> or <see cref="Aborted"/>: the answer (an aborted one holds the text so far,
/// as the Socket.IO-era POST did); neither: the response ended mid-answer, the upstream failed.
/// </para>
/// Not thread-safe: fed by the one loop that reads the response.
/// </summary>
internal sealed class SsePredictionResult
{
    // Events whose value the non-streaming answer carries under the same name. TROM.AI sends the whole
    // value each time (agentReasoning grows step by step), so the last one wins.
    private static readonly string[] AnswerMembers = ["sourceDocuments", "usedTools", "fileAnnotations", "agentReasoning", "artifacts", "action"];

    private readonly StringBuilder _text = new();
    private readonly JsonElement[] _members = new JsonElement[AnswerMembers.Length];
    private JsonElement _metadata;

    /// <summary>The <c>token</c>s so far, joined. <c>start</c> is not part of it: its value is the first token, which also comes as a <c>token</c>.</summary>
    public string Text => _text.ToString();

    /// <summary>The message of the first <c>error</c> event, or null. The first one names the cause; later ones are its echoes.</summary>
    public string? Error { get; private set; }

    public bool IsError => Error is not null;

    /// <summary>An <c>end</c> came: TROM.AI finished the answer.</summary>
    public bool Ended { get; private set; }

    /// <summary>An <c>abort</c> came: the prediction was stopped (<c>PUT /api/v1/chatmessage/abort/...</c>).</summary>
    public bool Aborted { get; private set; }

    /// <summary>
    /// Takes one event into the answer. Events the non-streaming answer has no place for (<c>start</c>,
    /// <c>thinking</c>, <c>tool</c>, <c>nextAgent</c>, <c>calledTools</c>, <c>usageMetadata</c>, <c>tts_*</c>,
    /// unknown names) only matter to a streaming client and leave it unchanged.
    /// </summary>
    public void Add(in UpstreamSseEvent sseEvent)
    {
        var data = sseEvent.Data;
        switch (sseEvent.Event)
        {
            case "token":
                // Always a string from TROM.AI; anything else has no text to add.
                if (data.ValueKind == JsonValueKind.String)
                {
                    _text.Append(data.GetString());
                }

                break;
            case "metadata":
                if (data.ValueKind == JsonValueKind.Object)
                {
                    _metadata = data;
                }

                break;
            case "error":
                Error ??= data.ValueKind switch
                {
                    JsonValueKind.String => data.GetString()!,
                    JsonValueKind.Undefined or JsonValueKind.Null => "TROM.AI reported an error without a message.",
                    _ => data.GetRawText(),
                };
                break;
            case "abort":
                Aborted = true;
                break;
            case "end":
                Ended = true;
                break;
            default:
                var member = Array.IndexOf(AnswerMembers, sseEvent.Event);
                if (member >= 0)
                {
                    _members[member] = data;
                }

                break;
        }
    }

    /// <summary>Writes the answer as one JSON object (see the type's summary for its members).</summary>
    public void WriteAnswer(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("text"u8, _text.ToString());
        if (_metadata.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in _metadata.EnumerateObject())
            {
                // The assembled text and the events' own values win over a same-named metadata member: one member, one value.
                if (!property.NameEquals("text"u8) && !IsAnswerMember(property))
                {
                    property.WriteTo(writer);
                }
            }
        }

        for (var i = 0; i < AnswerMembers.Length; i++)
        {
            if (_members[i].ValueKind != JsonValueKind.Undefined)
            {
                writer.WritePropertyName(AnswerMembers[i]);
                _members[i].WriteTo(writer);
            }
        }

        writer.WriteEndObject();
    }

    /// <summary>The answer as a JSON value, e.g. the last item of a hub <c>Predict</c> stream.</summary>
    public JsonElement ToAnswer()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteAnswer(writer);
        }

        var reader = new Utf8JsonReader(buffer.WrittenSpan);
        return JsonElement.ParseValue(ref reader);
    }

    private bool IsAnswerMember(JsonProperty property)
    {
        for (var i = 0; i < AnswerMembers.Length; i++)
        {
            if (_members[i].ValueKind != JsonValueKind.Undefined && property.NameEquals(AnswerMembers[i]))
            {
                return true;
            }
        }

        return false;
    }
}
