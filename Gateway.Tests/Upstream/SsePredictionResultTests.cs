using System.Buffers;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TromAi.Gateway.Tests.Fixtures;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class SsePredictionResultTests
{
    [Fact]
    public void The_answer_is_the_tokens_joined_plus_what_metadata_carried()
    {
        var result = Assemble(
            """{"event":"start","data":"Hel"}""",
            """{"event":"token","data":"Hel"}""",
            """{"event":"token","data":"lo"}""",
            """{"event":"metadata","data":{"chatId":"c-1","chatMessageId":"m-1","question":"Hi","sessionId":"c-1","memoryType":"Buffer Memory","flowVariables":{"a":1}}}""",
            """{"event":"end","data":"[DONE]"}""");

        AssertJson(
            """{"text":"Hello","chatId":"c-1","chatMessageId":"m-1","question":"Hi","sessionId":"c-1","memoryType":"Buffer Memory","flowVariables":{"a":1}}""",
            result.ToAnswer());
        Assert.Equal("Hello", result.Text);
        Assert.True(result.Ended);
        Assert.False(result.Aborted);
        Assert.False(result.IsError);
    }

    [Fact]
    public void Events_the_non_streaming_answer_carries_fill_their_members_the_last_value_winning()
    {
        var result = Assemble(
            """{"event":"token","data":"x"}""",
            """{"event":"sourceDocuments","data":[{"pageContent":"p","metadata":{}}]}""",
            """{"event":"usedTools","data":[{"tool":"calculator","toolInput":{},"toolOutput":"3"}]}""",
            """{"event":"fileAnnotations","data":[{"filePath":"/f","fileName":"f"}]}""",
            """{"event":"agentReasoning","data":[{"agentName":"Supervisor"}]}""",
            """{"event":"agentReasoning","data":[{"agentName":"Supervisor"},{"agentName":"Writer"}]}""",
            """{"event":"artifacts","data":[{"type":"png","data":"..."}]}""",
            """{"event":"action","data":{"id":"act-1"}}""",
            // For streaming clients only: no place in the answer.
            """{"event":"thinking","data":"hmm","duration":2}""",
            """{"event":"tool","data":"web-search"}""",
            """{"event":"nextAgent","data":"Writer"}""",
            """{"event":"calledTools","data":[]}""",
            """{"event":"usageMetadata","data":{"tokens":3}}""",
            """{"event":"brandNewEvent","data":1}""",
            """{"event":"end","data":"[DONE]"}""");

        AssertJson(
            """
            {"text":"x","sourceDocuments":[{"pageContent":"p","metadata":{}}],"usedTools":[{"tool":"calculator","toolInput":{},"toolOutput":"3"}],
             "fileAnnotations":[{"filePath":"/f","fileName":"f"}],"agentReasoning":[{"agentName":"Supervisor"},{"agentName":"Writer"}],
             "artifacts":[{"type":"png","data":"..."}],"action":{"id":"act-1"}}
            """,
            result.ToAnswer());
    }

    [Fact]
    public void Follow_up_prompts_are_JSON_encoded_once_more_as_TROM_AIs_non_streaming_answer_holds_them()
    {
        // TROM.AI stores the prompts as JSON text, answers JSON.stringify of that text, and its metadata event decodes one level.
        var result = Assemble(
            """{"event":"token","data":"x"}""",
            """{"event":"metadata","data":{"chatId":"c","followUpPrompts":"[\"Why?\",\"How?\"]"}}""");

        var prompts = result.ToAnswer().GetProperty("followUpPrompts").GetString()!;

        Assert.Equal("\"[\\\"Why?\\\",\\\"How?\\\"]\"", prompts);
        Assert.Equal(["Why?", "How?"], JsonSerializer.Deserialize<string[]>(JsonSerializer.Deserialize<string>(prompts)!)!);
    }

    [Fact]
    public void An_agentflows_answer_holds_its_executed_data_without_credential_ids_and_no_chatflow_members()
    {
        var result = Assemble(
            """{"event":"agentFlowEvent","data":"INPROGRESS"}""",
            """{"event":"nextAgentFlow","data":{"nodeId":"start_0","status":"FINISHED"}}""",
            """{"event":"agentFlowExecutedData","data":[{"nodeId":"start_0","status":"FINISHED"}]}""",
            """{"event":"calledTools","data":[{"name":"calculator"}]}""",
            """{"event":"usedTools","data":[{"tool":"calculator","toolOutput":"42"}]}""",
            """{"event":"sourceDocuments","data":[{"pageContent":"p"}]}""",
            """{"event":"artifacts","data":[{"type":"png"}]}""",
            """{"event":"fileAnnotations","data":[{"fileName":"f"}]}""",
            """{"event":"token","data":"42"}""",
            """{"event":"usageMetadata","data":{"total_tokens":3}}""",
            """{"event":"agentFlowExecutedData","data":[{"nodeId":"start_0","status":"FINISHED"},{"nodeId":"agent_0","data":{"input":{"config":{"modelName":"m","FLOWISE_CREDENTIAL_ID":"secret"}},"output":{"content":"42","usedTools":[{"tool":"calculator"}]}}}]}""",
            """{"event":"agentFlowEvent","data":"FINISHED"}""",
            """{"event":"metadata","data":{"chatId":"c","chatMessageId":"m","question":"6*7?","sessionId":"c"}}""",
            """{"event":"end","data":"[DONE]"}""");

        AssertJson(
            """
            {"text":"42","chatId":"c","chatMessageId":"m","question":"6*7?","sessionId":"c",
             "agentFlowExecutedData":[{"nodeId":"start_0","status":"FINISHED"},{"nodeId":"agent_0","data":{"input":{"config":{"modelName":"m"}},"output":{"content":"42","usedTools":[{"tool":"calculator"}]}}}]}
            """,
            result.ToAnswer());
    }

    [Fact]
    public async Task An_agentflow_answer_assembled_from_its_3x_stream_is_its_non_streaming_answer_but_for_the_executionId()
    {
        await using var upstream = await TestUpstream.StartAsync(TestUpstreamMode.TromAi3);
        var chatId = Guid.NewGuid().ToString();
        var result = new SsePredictionResult();

        using (var streamed = await upstream.Http.PostAsJsonAsync("api/v1/prediction/agentflow", new { question = "6*7?", chatId, streaming = true }))
        {
            Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType?.MediaType);
            await foreach (var sseEvent in SseEventReader.ReadAllAsync(await streamed.Content.ReadAsStreamAsync()))
            {
                result.Add(sseEvent);
            }
        }

        var (status, direct) = await Predictions.PostAsync(upstream.Http, "agentflow", new { question = "6*7?", chatId });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(result.Ended);
        var assembled = result.ToAnswer();
        Assert.False(assembled.TryGetProperty("executionId", out _)); // only the non-streaming answer has it: the stream never carries it
        Assert.True(direct.TryGetProperty("executionId", out _));
        // Two predictions are two chat messages: each has its own id, the rest is the same answer.
        Assert.NotEqual(direct.GetProperty("chatMessageId").GetString(), assembled.GetProperty("chatMessageId").GetString());
        AssertJson(Without(direct, "executionId", "chatMessageId").GetRawText(), Without(assembled, "chatMessageId"));
        Assert.Contains("agentFlowExecutedData", assembled.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void Every_member_appears_once_the_assembled_values_winning_over_metadata()
    {
        var result = Assemble(
            """{"event":"token","data":"from tokens"}""",
            """{"event":"sourceDocuments","data":["from the event"]}""",
            """{"event":"metadata","data":{"text":"from metadata","sourceDocuments":["from metadata"],"usedTools":["only in metadata"]}}""");

        var answer = result.ToAnswer();

        Assert.Equal(["text", "usedTools", "sourceDocuments"], answer.EnumerateObject().Select(p => p.Name));
        AssertJson("""{"text":"from tokens","sourceDocuments":["from the event"],"usedTools":["only in metadata"]}""", answer);
    }

    [Fact]
    public void An_error_event_makes_a_failed_prediction_with_its_message()
    {
        var result = Assemble(
            """{"event":"error","data":"Unauthorized"}""",
            """{"event":"error","data":"an echo of it"}""",
            """{"event":"end","data":"[DONE]"}""");

        Assert.True(result.IsError);
        Assert.Equal("Unauthorized", result.Error);
        Assert.True(result.Ended);
    }

    [Theory]
    [InlineData("""{"event":"error"}""", "TROM.AI reported an error without a message.")]
    [InlineData("""{"event":"error","data":null}""", "TROM.AI reported an error without a message.")]
    [InlineData("""{"event":"error","data":{"message":"boom"}}""", """{"message":"boom"}""")]
    [InlineData("""{"event":"error","data":""}""", "")]
    public void An_error_without_a_string_still_fails_the_prediction(string json, string error)
    {
        var result = Assemble(json);

        Assert.True(result.IsError);
        Assert.Equal(error, result.Error);
    }

    [Fact]
    public void An_aborted_prediction_answers_the_text_so_far()
    {
        var result = Assemble(
            """{"event":"start","data":"a"}""",
            """{"event":"token","data":"a"}""",
            """{"event":"token","data":"b"}""",
            """{"event":"abort","data":"[DONE]"}""");

        Assert.True(result.Aborted);
        Assert.False(result.Ended);
        Assert.False(result.IsError);
        AssertJson("""{"text":"ab"}""", result.ToAnswer());
    }

    [Fact]
    public void A_stream_cut_short_is_neither_ended_nor_aborted()
    {
        var result = Assemble("""{"event":"token","data":"a"}""");

        Assert.False(result.Ended);
        Assert.False(result.Aborted);
        Assert.False(result.IsError);
    }

    [Fact]
    public void Only_string_tokens_add_text_and_tokens_after_end_still_count()
    {
        var result = Assemble(
            """{"event":"token","data":"a"}""",
            """{"event":"token","data":{"not":"text"}}""",
            """{"event":"token"}""",
            """{"event":"end","data":"[DONE]"}""",
            """{"event":"token","data":"b"}""");

        Assert.Equal("ab", result.Text);
    }

    [Fact]
    public void The_answer_written_to_a_writer_is_the_same_JSON()
    {
        var result = Assemble("""{"event":"token","data":"é \"quoted\" <b>"}""", """{"event":"metadata","data":{"chatId":"c"}}""");
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            result.WriteAnswer(writer);
        }

        using var written = JsonDocument.Parse(buffer.WrittenMemory);
        Assert.Equal("é \"quoted\" <b>", written.RootElement.GetProperty("text").GetString());
        AssertJson(result.ToAnswer().GetRawText(), written.RootElement);
    }

    [Fact]
    public async Task The_test_upstreams_all_events_answer_read_off_the_wire()
    {
        // Captured from the test upstream in SSE mode (STREAMING=sse, POST /api/v1/prediction/all-events, "streaming": true).
        const string capture =
            "message:\ndata:{\"event\":\"start\",\"data\":\"Hel\"}\n\n:heartbeat\n\n" +
            "message:\ndata:{\"event\":\"token\",\"data\":\"Hel\"}\n\n" +
            "message:\ndata:{\"event\":\"token\",\"data\":\"lo\"}\n\n" +
            "message:\ndata:{\"event\":\"token\",\"data\":\"\"}\n\n" +
            "message:\ndata:{\"event\":\"sourceDocuments\",\"data\":[{\"pageContent\":\"TROM.AI streams tokens.\",\"metadata\":{\"source\":\"guide.md\",\"page\":3,\"score\":0.8125}}]}\n\n" +
            "message:\ndata:{\"event\":\"usedTools\",\"data\":[{\"tool\":\"calculator\",\"toolInput\":{\"a\":1,\"b\":2.5},\"toolOutput\":\"3.5\"}]}\n\n" +
            "message:\ndata:{\"event\":\"fileAnnotations\",\"data\":[{\"filePath\":\"/files/report.pdf\",\"fileName\":\"report.pdf\"}]}\n\n" +
            "message:\ndata:{\"event\":\"tool\",\"data\":\"web-search\"}\n\n" +
            "message:\ndata:{\"event\":\"agentReasoning\",\"data\":[{\"agentName\":\"Supervisor\",\"messages\":[\"Route to the writer\"],\"next\":\"Writer\"}]}\n\n" +
            "message:\ndata:{\"event\":\"nextAgent\",\"data\":\"Writer\"}\n\n" +
            "message:\ndata:{\"event\":\"action\",\"data\":{\"id\":\"act-1\",\"mapping\":{\"approve\":\"Proceed\",\"reject\":\"Cancel\"}}}\n\n" +
            "message:\ndata:{\"event\":\"token\",\"data\":\" after end\"}\n\n" +
            "message:\ndata:{\"event\":\"agentReasoningJson\",\"data\":\"[{\\\"agentName\\\":\\\"Supervisor\\\",\\\"messages\\\":[]}]\"}\n\n" +
            "message:\ndata:{\"event\":\"binaryEvent\",\"data\":{\"name\":\"blob.bin\",\"data\":\"AAEC+v8=\"}}\n\n" +
            "message:\ndata:{\"event\":\"metadata\",\"data\":{\"chatId\":\"d82b\",\"chatMessageId\":\"9488\",\"question\":\"hi\",\"sessionId\":\"d82b\",\"memoryType\":\"Buffer Memory\"}}\n\n" +
            "message\ndata:{\"event\":\"end\",\"data\":\"[DONE]\"}\n\n";
        var result = new SsePredictionResult();

        await foreach (var sseEvent in SseEventReader.ReadAllAsync(new MemoryStream(Encoding.UTF8.GetBytes(capture))))
        {
            result.Add(sseEvent);
        }

        AssertJson(
            """
            {"text":"Hello after end","chatId":"d82b","chatMessageId":"9488","question":"hi","sessionId":"d82b","memoryType":"Buffer Memory",
             "sourceDocuments":[{"pageContent":"TROM.AI streams tokens.","metadata":{"source":"guide.md","page":3,"score":0.8125}}],
             "usedTools":[{"tool":"calculator","toolInput":{"a":1,"b":2.5},"toolOutput":"3.5"}],
             "fileAnnotations":[{"filePath":"/files/report.pdf","fileName":"report.pdf"}],
             "agentReasoning":[{"agentName":"Supervisor","messages":["Route to the writer"],"next":"Writer"}],
             "action":{"id":"act-1","mapping":{"approve":"Proceed","reject":"Cancel"}}}
            """,
            result.ToAnswer());
        Assert.True(result.Ended);
    }

    private static SsePredictionResult Assemble(params string[] events)
    {
        var result = new SsePredictionResult();
        foreach (var json in events)
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
            var whole = JsonElement.ParseValue(ref reader);
            whole.TryGetProperty("data", out var data);
            result.Add(new UpstreamSseEvent(whole.GetProperty("event").GetString()!, data, whole));
        }

        return result;
    }

    /// <summary>The object without the named members.</summary>
    internal static JsonElement Without(JsonElement answer, params string[] names)
    {
        var copy = JsonNode.Parse(answer.GetRawText())!.AsObject();
        foreach (var name in names)
        {
            copy.Remove(name);
        }

        return JsonSerializer.SerializeToElement(copy);
    }

    private static void AssertJson(string expected, JsonElement actual)
    {
        using var expectedDocument = JsonDocument.Parse(expected);
        Assert.True(JsonElement.DeepEquals(expectedDocument.RootElement, actual), $"expected {expected}\nactual   {actual.GetRawText()}");
    }
}
