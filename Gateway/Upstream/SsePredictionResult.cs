using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// The answer of a prediction the gateway streamed over SSE on a client's behalf, built from the
/// events as they pass, in the shape of TROM.AI's non-streaming answer, so a REST caller cannot tell
/// that the gateway streamed.
/// <para>
/// Member by member, against what TROM.AI's own non-streaming answer holds (read from Flowise's
/// <c>buildChatflow.ts</c>, <c>buildAgentflow.ts</c> and <c>SSEStreamer.ts</c>, 2.1 to 3.1):
/// <list type="bullet">
/// <item><c>text</c>: the <c>token</c>s joined.</item>
/// <item>what <c>metadata</c> carried, as it came: <c>question, chatId, chatMessageId, sessionId, memoryType,
/// flowVariables, action</c>, and whatever a later version adds. Except <c>followUpPrompts</c>: TROM.AI's
/// answer holds them JSON-encoded twice (a string whose value is the JSON of the string it stored) and
/// <c>metadata</c> decodes one level, so the answer holds the JSON text of <c>metadata</c>'s value, as a string.</item>
/// <item><c>sourceDocuments, usedTools, fileAnnotations, artifacts, agentReasoning, action</c>: a chatflow's
/// answer carries its ending node's values, which its stream sends as these events (the last value wins:
/// <c>agentReasoning</c> grows step by step).</item>
/// <item><c>agentFlowExecutedData</c>: an Agentflow V2's answer carries every node's execution, which its
/// stream sends whole after each node (the last value wins), minus the <c>FLOWISE_CREDENTIAL_ID</c>s that
/// TROM.AI strips from the answer only. Such an answer has no top-level <c>sourceDocuments, usedTools,
/// fileAnnotations, artifacts</c> (they are in the nodes' outputs), though its stream sends them as events,
/// so an agentflow's assembled answer leaves them out too.</item>
/// </list>
/// Never in the answer: what only matters while streaming (<c>start, thinking, tool, nextAgent, nextAgentFlow,
/// agentFlowEvent, calledTools, usageMetadata, tts_*</c>, unknown names), and what the stream cannot carry:
/// an agentflow's <c>executionId</c> (and its <c>form</c>, for form-input flows), a chatflow's
/// <c>isStreamValid</c> (false in every non-streaming answer), an evaluation's <c>metrics</c>.
/// </para>
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
    // Events whose value the non-streaming answer carries under the same name.
    private static readonly string[] AnswerMembers =
        ["sourceDocuments", "usedTools", "fileAnnotations", "agentReasoning", "artifacts", "action", "agentFlowExecutedData"];

    private const int AgentFlowExecutedData = 6;

    // Members of a chatflow's answer that an Agentflow V2's answer keeps inside its nodes' outputs.
    private static readonly string[] ChatflowOnlyMembers = ["sourceDocuments", "usedTools", "fileAnnotations", "artifacts"];

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

    private bool IsAgentflow => _members[AgentFlowExecutedData].ValueKind != JsonValueKind.Undefined;

    /// <summary>Takes one event into the answer (see the type's summary for which events count).</summary>
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
                if (property.NameEquals("text"u8) || IsAnswerMember(property))
                {
                    continue;
                }

                if (property.NameEquals("followUpPrompts"u8))
                {
                    // The raw text is the JSON TROM.AI wrote for the value: encoding it once more restores its answer's form.
                    writer.WriteString("followUpPrompts"u8, property.Value.GetRawText());
                }
                else
                {
                    property.WriteTo(writer);
                }
            }
        }

        var agentflow = IsAgentflow;
        for (var i = 0; i < AnswerMembers.Length; i++)
        {
            if (!IsWritten(i, agentflow))
            {
                continue;
            }

            writer.WritePropertyName(AnswerMembers[i]);
            if (i == AgentFlowExecutedData)
            {
                WriteWithoutCredentialIds(writer, _members[i]);
            }
            else
            {
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

    private bool IsWritten(int member, bool agentflow) =>
        _members[member].ValueKind != JsonValueKind.Undefined
        && !(agentflow && Array.IndexOf(ChatflowOnlyMembers, AnswerMembers[member]) >= 0);

    private bool IsAnswerMember(JsonProperty property)
    {
        var agentflow = IsAgentflow;
        for (var i = 0; i < AnswerMembers.Length; i++)
        {
            if (IsWritten(i, agentflow) && property.NameEquals(AnswerMembers[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Writes <paramref name="value"/> without any <c>FLOWISE_CREDENTIAL_ID</c> member, at any depth, as TROM.AI's answer has it.</summary>
    private static void WriteWithoutCredentialIds(Utf8JsonWriter writer, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in value.EnumerateObject())
                {
                    if (!property.NameEquals("FLOWISE_CREDENTIAL_ID"u8))
                    {
                        writer.WritePropertyName(property.Name);
                        WriteWithoutCredentialIds(writer, property.Value);
                    }
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in value.EnumerateArray())
                {
                    WriteWithoutCredentialIds(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                value.WriteTo(writer);
                break;
        }
    }
}
