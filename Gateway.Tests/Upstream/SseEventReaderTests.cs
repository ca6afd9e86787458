using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Upstream;

public sealed class SseEventReaderTests
{
    /// <summary>What TROM.AI 2.1+ writes for a short answer, block for block.</summary>
    private const string Capture =
        "message:\ndata:{\"event\":\"start\",\"data\":\"Hel\"}\n\n" +
        "message:\ndata:{\"event\":\"token\",\"data\":\"Hel\"}\n\n" +
        "message:\ndata:{\"event\":\"token\",\"data\":\"lo\"}\n\n" +
        "message:\ndata:{\"event\":\"metadata\",\"data\":{\"chatId\":\"c-1\",\"chatMessageId\":\"m-1\",\"question\":\"Hi\",\"sessionId\":\"c-1\",\"memoryType\":\"Buffer Memory\"}}\n\n" +
        "message:\ndata:{\"event\":\"end\",\"data\":\"[DONE]\"}\n\n";

    private static readonly string[] CaptureEvents =
    [
        "start \"Hel\"",
        "token \"Hel\"",
        "token \"lo\"",
        "metadata {\"chatId\":\"c-1\",\"chatMessageId\":\"m-1\",\"question\":\"Hi\",\"sessionId\":\"c-1\",\"memoryType\":\"Buffer Memory\"}",
        "end \"[DONE]\"",
    ];

    /// <summary>Every quirk of the wire format in one stream.</summary>
    private const string Quirks =
        "\uFEFF" + // a byte order mark, dropped by the SSE spec
        "message:\ndata:{\"event\":\"start\",\"data\":\"Hé\"}\n\n" +
        ":heartbeat\n\n" + // 3.1.2+: a comment block of its own
        "message:\r\ndata: {\"event\":\"token\",\"data\":\"Hé\"}\r\n\r\n" + // CRLF, a space after data:
        "event: ignored\rdata:{\"event\":\"token\",\"data\":\"llo ✓ 😀\"}\r\r" + // lone CR, an event: line
        "id: 7\nretry: 1000\n: a comment\ndata:{\"event\":\"thinking\",\n:heartbeat\ndata:\"data\":\"hmm\",\"duration\":12}\n\n" + // two data lines around a comment
        "message:\n\n" + // a block without data
        "data:\n\n" + // an empty data line: an SSE keep-alive
        "message\ndata:{\"event\":\"abort\",\"data\":\"[DONE]\"}\n\n" + // 2.1.0 to 3.1.0: `message` without its colon
        "message\ndata:{\"event\":\"error\",\"data\":\"boom\"}\n\n" +
        "message\ndata:{\"event\":\"end\",\"data\":\"[DONE]\"}"; // the response ends without a newline

    private static readonly string[] QuirksEvents =
    [
        "start \"Hé\"",
        "token \"Hé\"",
        "token \"llo ✓ 😀\"",
        "thinking \"hmm\"",
        "abort \"[DONE]\"",
        "error \"boom\"",
        "end \"[DONE]\"",
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(65536)]
    public async Task A_streamed_answer_yields_its_events_in_order_however_the_response_is_cut(int bytesPerRead)
    {
        var (events, skipped) = await ReadAsync(Capture, bytesPerRead);

        Assert.Equal(CaptureEvents, events.Select(Describe));
        Assert.Empty(skipped);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(65536)]
    public async Task Every_quirk_of_the_wire_format_is_understood_read_by_read(int bytesPerRead)
    {
        var (events, skipped) = await ReadAsync(Quirks, bytesPerRead);

        Assert.Equal(QuirksEvents, events.Select(Describe));
        Assert.Empty(skipped);
    }

    [Fact]
    public async Task Every_quirk_of_the_wire_format_is_understood_wherever_the_bytes_split()
    {
        var bytes = Encoding.UTF8.GetBytes(Quirks);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var (events, _) = await ReadAsync(new ChunkedStream(bytes[..split], bytes[split..]));
            Assert.True(QuirksEvents.SequenceEqual(events.Select(Describe)), $"split at byte {split}: {string.Join(" | ", events.Select(Describe))}");
        }
    }

    [Fact]
    public async Task Message_without_its_colon_before_end_abort_and_error_is_ignored_like_message_with_it()
    {
        const string legacy = // as TROM.AI 2.1.0 to 3.1.0 wrote these three
            "message:\ndata:{\"event\":\"token\",\"data\":\"a\"}\n\n" +
            "message\ndata:{\"event\":\"error\",\"data\":\"Unauthorized\"}\n\n" +
            "message\ndata:{\"event\":\"abort\",\"data\":\"[DONE]\"}\n\n" +
            "message\ndata:{\"event\":\"end\",\"data\":\"[DONE]\"}\n\n";

        var (events, _) = await ReadAsync(legacy, bytesPerRead: 1);

        Assert.Equal(["token \"a\"", "error \"Unauthorized\"", "abort \"[DONE]\"", "end \"[DONE]\""], events.Select(Describe));
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public async Task Any_line_end_the_SSE_spec_allows_separates_lines_and_blocks(string lineEnd)
    {
        var sse = $"message:{lineEnd}data:{{\"event\":\"token\",\"data\":\"a\"}}{lineEnd}{lineEnd}:heartbeat{lineEnd}{lineEnd}data: {{\"event\":\"token\",\"data\":\"b\"}}{lineEnd}{lineEnd}";

        var (events, _) = await ReadAsync(sse, bytesPerRead: 1);

        Assert.Equal(["token \"a\"", "token \"b\""], events.Select(Describe));
    }

    [Fact]
    public async Task Data_lines_of_one_block_are_joined_with_a_line_feed()
    {
        const string sse = "data:{\"event\":\"usedTools\",\ndata: \"data\":[1,\ndata:2]}\n\n";

        var (events, _) = await ReadAsync(sse, bytesPerRead: 1);

        var usedTools = Assert.Single(events);
        Assert.Equal("{\"event\":\"usedTools\",\n\"data\":[1,\n2]}", usedTools.Whole.GetRawText());
        Assert.Equal("[1,\n2]", usedTools.Data.GetRawText());
    }

    [Fact]
    public async Task Characters_of_several_bytes_split_across_reads_arrive_whole()
    {
        const string sse = "message:\ndata:{\"event\":\"token\",\"data\":\"é ✓ 中文 😀\"}\n\n"; // raw UTF-8, as Node writes it

        var (events, _) = await ReadAsync(sse, bytesPerRead: 1);

        Assert.Equal("é ✓ 中文 😀", Assert.Single(events).Data.GetString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public async Task The_last_block_needs_no_blank_line_when_the_response_ends(string ending)
    {
        var sse = "message:\ndata:{\"event\":\"token\",\"data\":\"a\"}\n\nmessage\ndata:{\"event\":\"end\",\"data\":\"[DONE]\"}" + ending;

        var (events, skipped) = await ReadAsync(sse, bytesPerRead: 1);

        Assert.Equal(["token \"a\"", "end \"[DONE]\""], events.Select(Describe));
        Assert.Empty(skipped);
    }

    [Fact]
    public async Task Blocks_that_are_not_TROM_AI_events_are_skipped_and_reported_and_the_stream_goes_on()
    {
        var sse = string.Concat(
            Block("""{"event":"token","data":"a"}"""),
            Block("""{"event":"token","data":"b"""), // cut short
            Block("[DONE]"), // OpenAI's end marker
            Block("\"just a string\""),
            Block("""{"data":"no event"}"""),
            Block("""{"event":42,"data":"a number for a name"}"""),
            Block("""{"event":"token","data":"c"} {"event":"token","data":"d"}"""), // two values in one block
            Block("""{"event":"end","data":"[DONE]"}"""),
            "message:\ndata:{\"event\":\"token\",\"da"); // the connection dropped mid-block

        var (events, skipped) = await ReadAsync(sse, bytesPerRead: 3);

        Assert.Equal(["token \"a\"", "end \"[DONE]\""], events.Select(Describe));
        Assert.Equal(7, skipped.Count);
        Assert.All(skipped, reason => Assert.StartsWith("Skipped an SSE block from TROM.AI: ", reason));
        Assert.Contains("not JSON", skipped[0]);
        Assert.Contains("""{"event":"token","data":"b""", skipped[0]);
        Assert.Contains("not a TROM.AI event", skipped[2]);
    }

    [Fact]
    public async Task A_skipped_block_is_previewed_briefly_and_without_a_callback_the_stream_goes_on()
    {
        var huge = $"{{\"event\":\"token\",\"data\":\"{new string('x', 10_000)}\""; // not closed
        var sse = Encoding.UTF8.GetBytes(Block(huge) + Block("""{"event":"token","data":"after"}"""));
        var reasons = new List<string>();
        var quiet = new List<UpstreamSseEvent>();

        var (reported, _) = await ReadAsync(new ChunkedStream(sse), reasons.Add);
        await foreach (var sseEvent in SseEventReader.ReadAllAsync(new ChunkedStream(sse)))
        {
            quiet.Add(sseEvent);
        }

        Assert.InRange(Assert.Single(reasons).Length, 200, 600); // the reason, and the block's first 200 bytes
        Assert.Equal("token \"after\"", Describe(Assert.Single(reported)));
        Assert.Equal("token \"after\"", Describe(Assert.Single(quiet)));
    }

    [Fact]
    public async Task An_event_without_data_is_an_event_with_no_arguments()
    {
        var (events, _) = await ReadAsync(Block("""{"event":"tts_end"}"""), bytesPerRead: 1);

        var ttsEnd = Assert.Single(events);
        Assert.Equal("tts_end", ttsEnd.Event);
        Assert.Equal(JsonValueKind.Undefined, ttsEnd.Data.ValueKind);
        Assert.Empty(ttsEnd.ToArguments());
    }

    [Fact]
    public async Task Thinking_keeps_its_duration_in_the_whole_event_and_relays_it_as_a_second_argument()
    {
        var (events, _) = await ReadAsync(Block("""{"event":"thinking","data":"Let me see","duration":3}"""), bytesPerRead: 1);

        var thinking = Assert.Single(events);
        Assert.Equal(3, thinking.Whole.GetProperty("duration").GetInt32());
        Assert.Equal(["\"Let me see\"", "3"], thinking.ToArguments().Select(a => ((JsonElement)a!).GetRawText()));
    }

    [Theory]
    [InlineData("""{"event":"end","data":"[DONE]"}""", "")]
    [InlineData("""{"event":"abort","data":"[DONE]"}""", "")]
    [InlineData("""{"event":"end","data":"something else"}""", "\"something else\"")]
    [InlineData("""{"event":"token","data":"[DONE]"}""", "\"[DONE]\"")]
    [InlineData("""{"event":"thinking","data":"hmm"}""", "\"hmm\"")]
    [InlineData("""{"event":"usedTools","data":[{"tool":"calculator"}],"extra":1}""", """[{"tool":"calculator"}]""")]
    [InlineData("""{"event":"brandNewEvent","data":null}""", "null")]
    public async Task Arguments_are_those_of_the_Socket_IO_era(string json, string arguments)
    {
        var (events, _) = await ReadAsync(Block(json), bytesPerRead: 65536);
        var sseEvent = Assert.Single(events);

        Assert.Equal(arguments, string.Join(",", sseEvent.ToArguments().Select(a => ((JsonElement)a!).GetRawText())));
    }

    [Fact]
    public async Task Names_TROM_AI_sends_cost_no_string_per_event_and_new_names_still_come()
    {
        var (events, _) = await ReadAsync(
            Block("""{"event":"token","data":"a"}""") + Block("""{"event":"token","data":"b"}""") + Block("""{"event":"brandNewEvent","data":1}"""),
            bytesPerRead: 1);

        Assert.Same(events[0].Event, events[1].Event);
        Assert.Equal("brandNewEvent", events[2].Event);
    }

    [Fact]
    public async Task Each_event_is_yielded_as_soon_as_its_block_is_complete()
    {
        var pipe = new Pipe();
        await using var events = SseEventReader.ReadAllAsync(pipe.Reader.AsStream()).GetAsyncEnumerator();

        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(Block("""{"event":"token","data":"first"}""") + "message:\ndata:{\"event\":\"tok"));
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("token \"first\"", Describe(events.Current));

        var second = events.MoveNextAsync();
        Assert.False(second.IsCompleted, "the second block is not complete yet");
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("en\",\"data\":\"second\"}\n\n"));
        Assert.True(await second);
        Assert.Equal("token \"second\"", Describe(events.Current));

        await pipe.Writer.CompleteAsync();
        Assert.False(await events.MoveNextAsync());
    }

    [Fact]
    public async Task Reading_stops_when_cancelled_while_the_upstream_is_silent()
    {
        var pipe = new Pipe();
        using var cancel = new CancellationTokenSource();
        await using var events = SseEventReader.ReadAllAsync(pipe.Reader.AsStream(), cancellationToken: cancel.Token).GetAsyncEnumerator();

        var next = events.MoveNextAsync();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await next);
    }

    [Fact]
    public async Task A_block_or_line_larger_than_the_limit_fails_the_stream()
    {
        var line = Block($"{{\"event\":\"token\",\"data\":\"{new string('x', 100)}\"}}");
        var shortLines = "message:\ndata:{\"event\":\"token\",\"data\":\n" + string.Concat(Enumerable.Repeat("data:\"x\"\n", 20));

        await Assert.ThrowsAsync<InvalidDataException>(() => ReadAsync(line, bytesPerRead: 7, maxBlockBytes: 64));
        await Assert.ThrowsAsync<InvalidDataException>(() => ReadAsync(shortLines, bytesPerRead: 7, maxBlockBytes: 64));

        // A line that never ends fails as soon as it is too long, not when the upstream closes.
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("data:" + new string('x', 100)));
        await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            await foreach (var _ in SseEventReader.ReadAllAsync(pipe.Reader.AsStream(), maxBlockBytes: 64))
            {
            }
        });
    }

    [Fact]
    public async Task Blocks_each_within_the_limit_pass_however_long_the_answer()
    {
        var largestBlock = Capture.Split("\n\n").Max(block => Encoding.UTF8.GetByteCount(block + "\n\n"));

        var (events, _) = await ReadAsync(Capture + Capture + Capture, bytesPerRead: 7, maxBlockBytes: largestBlock);

        Assert.Equal(CaptureEvents.Concat(CaptureEvents).Concat(CaptureEvents), events.Select(Describe));
    }

    [Fact]
    public async Task A_large_block_between_tokens_arrives_whole_and_the_tokens_after_it_too()
    {
        var documents = Enumerable.Range(0, 2000).Select(i => new { pageContent = $"chunk {i} é", metadata = new { page = i } }).ToArray();
        var sse = Block("""{"event":"token","data":"a"}""")
            + Block(JsonSerializer.Serialize(new { @event = "sourceDocuments", data = documents }))
            + Block("""{"event":"token","data":"b"}""");

        var (events, _) = await ReadAsync(sse, bytesPerRead: 1000);

        Assert.Equal(["token", "sourceDocuments", "token"], events.Select(e => e.Event));
        Assert.Equal(2000, events[1].Data.GetArrayLength());
        Assert.Equal("chunk 1999 é", events[1].Data[1999].GetProperty("pageContent").GetString());
        Assert.Equal("b", events[2].Data.GetString());
    }

    [Theory]
    [InlineData("text/event-stream", true)]
    [InlineData("TEXT/Event-Stream", true)]
    [InlineData("application/json", false)]
    [InlineData("text/html", false)]
    [InlineData(null, false)]
    public void A_flow_that_cannot_stream_is_told_by_its_media_type(string? mediaType, bool isEventStream) =>
        Assert.Equal(isEventStream, SseEventReader.IsEventStream(mediaType));

    private static string Block(string json) => $"message:\ndata:{json}\n\n";

    /// <summary>
    /// Event name and raw data, described only after the whole stream was read: the events must own
    /// their JSON, not borrow the reader's buffers.
    /// </summary>
    private static string Describe(UpstreamSseEvent e) =>
        e.Data.ValueKind == JsonValueKind.Undefined ? e.Event : $"{e.Event} {e.Data.GetRawText()}";

    private static Task<(List<UpstreamSseEvent> Events, List<string> Skipped)> ReadAsync(
        string sse, int bytesPerRead, int maxBlockBytes = SseEventReader.DefaultMaxBlockBytes) =>
        ReadAsync(new ChunkedStream(Encoding.UTF8.GetBytes(sse).Chunk(bytesPerRead).ToArray()), maxBlockBytes: maxBlockBytes);

    private static async Task<(List<UpstreamSseEvent> Events, List<string> Skipped)> ReadAsync(
        Stream body, Action<string>? onSkipped = null, int maxBlockBytes = SseEventReader.DefaultMaxBlockBytes)
    {
        var events = new List<UpstreamSseEvent>();
        var skipped = new List<string>();
        await foreach (var sseEvent in SseEventReader.ReadAllAsync(body, onSkipped ?? skipped.Add, maxBlockBytes))
        {
            events.Add(sseEvent);
        }

        return (events, skipped);
    }

    /// <summary>A response body that hands out one chunk (or what fits of it) per read, as a network would.</summary>
    private sealed class ChunkedStream(params byte[][] chunks) : Stream
    {
        private int _chunk;
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (_chunk < chunks.Length && _position == chunks[_chunk].Length)
            {
                _chunk++;
                _position = 0;
            }

            if (_chunk == chunks.Length)
            {
                return 0;
            }

            var count = Math.Min(buffer.Length, chunks[_chunk].Length - _position);
            chunks[_chunk].AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield(); // every read completes later, as a network read does
            return Read(buffer.Span);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
