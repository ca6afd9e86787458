using System.Buffers;
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
    public void Every_quirk_of_the_wire_format_is_understood_wherever_the_bytes_split()
    {
        var bytes = Encoding.UTF8.GetBytes(Quirks);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var events = Decode(bytes[..split], bytes[split..]);
            Assert.True(QuirksEvents.SequenceEqual(events.Select(Describe)), $"split at byte {split}: {string.Join(" | ", events.Select(Describe))}");
        }
    }

    [Fact]
    public void Every_quirk_of_the_wire_format_is_understood_in_a_buffer_of_one_byte_segments()
    {
        var reader = new SseEventReader();
        var buffer = OneByteSegments(Encoding.UTF8.GetBytes(Quirks));
        var events = new List<UpstreamSseEvent>();
        while (reader.TryRead(ref buffer, isFinalBlock: true, out var sseEvent))
        {
            events.Add(sseEvent);
        }

        Assert.Equal(QuirksEvents, events.Select(Describe));
        Assert.True(buffer.IsEmpty);
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
    public void Skipped_blocks_are_counted_without_a_callback_and_previewed_briefly_with_one()
    {
        var huge = $"{{\"event\":\"token\",\"data\":\"{new string('x', 10_000)}\""; // not closed
        var quiet = new SseEventReader();
        var reasons = new List<string>();
        var reported = new SseEventReader(reasons.Add);

        Decode(quiet, Encoding.UTF8.GetBytes(Block(huge)));
        Decode(reported, Encoding.UTF8.GetBytes(Block(huge)));

        Assert.Equal(1, quiet.SkippedBlocks);
        Assert.Equal(1, reported.SkippedBlocks);
        Assert.InRange(Assert.Single(reasons).Length, 200, 600); // the reason, and the block's first 200 bytes
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
    public void Arguments_are_those_of_the_Socket_IO_era(string json, string arguments)
    {
        var sseEvent = Assert.Single(Decode(new SseEventReader(), Encoding.UTF8.GetBytes(Block(json))));

        Assert.Equal(arguments, string.Join(",", sseEvent.ToArguments().Select(a => ((JsonElement)a!).GetRawText())));
    }

    [Fact]
    public void Names_TROM_AI_sends_cost_no_string_per_event_and_new_names_still_come()
    {
        var events = Decode(new SseEventReader(), Encoding.UTF8.GetBytes(
            Block("""{"event":"token","data":"a"}""") + Block("""{"event":"token","data":"b"}""") + Block("""{"event":"brandNewEvent","data":1}""")));

        Assert.Same(events[0].Event, events[1].Event);
        Assert.Equal("brandNewEvent", events[2].Event);
    }

    [Fact]
    public async Task Each_event_is_yielded_as_soon_as_its_block_is_complete()
    {
        var pipe = new Pipe();
        await using var events = SseEventReader.ReadAllAsync(pipe.Reader).GetAsyncEnumerator();

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
    public async Task A_consumer_that_stops_early_leaves_the_callers_pipe_readable_after_what_it_read()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(Block("""{"event":"token","data":"a"}""") + Block("""{"event":"token","data":"b"}""")));

        await foreach (var sseEvent in SseEventReader.ReadAllAsync(pipe.Reader))
        {
            Assert.Equal("token \"a\"", Describe(sseEvent));
            break;
        }

        var rest = await pipe.Reader.ReadAsync();
        Assert.Equal(Block("""{"event":"token","data":"b"}"""), Encoding.UTF8.GetString(rest.Buffer));
    }

    [Fact]
    public async Task Reading_stops_when_cancelled_while_the_upstream_is_silent()
    {
        var pipe = new Pipe();
        using var cancel = new CancellationTokenSource();
        await using var events = SseEventReader.ReadAllAsync(pipe.Reader, cancellationToken: cancel.Token).GetAsyncEnumerator();

        var next = events.MoveNextAsync();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await next);
    }

    [Fact]
    public async Task A_block_or_line_larger_than_the_limit_fails_the_stream()
    {
        var block = Block($"{{\"event\":\"token\",\"data\":\"{new string('x', 100)}\"}}");
        var unterminated = "data:" + new string('x', 100);

        await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            await foreach (var _ in SseEventReader.ReadAllAsync(new TrickleStream(Encoding.UTF8.GetBytes(block), 7), maxBlockBytes: 64))
            {
            }
        });
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(unterminated));
        Assert.Throws<InvalidDataException>(() => new SseEventReader(maxBlockBytes: 64).TryRead(ref buffer, isFinalBlock: false, out _));
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

    private static async Task<(List<UpstreamSseEvent> Events, List<string> Skipped)> ReadAsync(string sse, int bytesPerRead)
    {
        var events = new List<UpstreamSseEvent>();
        var skipped = new List<string>();
        await foreach (var sseEvent in SseEventReader.ReadAllAsync(new TrickleStream(Encoding.UTF8.GetBytes(sse), bytesPerRead), skipped.Add))
        {
            events.Add(sseEvent);
        }

        return (events, skipped);
    }

    /// <summary>Feeds the decoder chunk by chunk the way a pipe does: what it leaves unconsumed comes back with the next chunk.</summary>
    private static List<UpstreamSseEvent> Decode(params byte[][] chunks) => Decode(new SseEventReader(), chunks);

    private static List<UpstreamSseEvent> Decode(SseEventReader reader, params byte[][] chunks)
    {
        var events = new List<UpstreamSseEvent>();
        var pending = Array.Empty<byte>();
        for (var i = 0; i < chunks.Length; i++)
        {
            var buffer = new ReadOnlySequence<byte>([.. pending, .. chunks[i]]);
            while (reader.TryRead(ref buffer, isFinalBlock: i == chunks.Length - 1, out var sseEvent))
            {
                events.Add(sseEvent);
            }

            pending = buffer.ToArray();
        }

        return events;
    }

    /// <summary>Every byte in a segment of its own, with an empty segment after each.</summary>
    private static ReadOnlySequence<byte> OneByteSegments(byte[] bytes)
    {
        var first = new Segment(bytes.AsMemory(0, 1));
        var last = first;
        for (var i = 1; i < bytes.Length; i++)
        {
            last = last.Append(ReadOnlyMemory<byte>.Empty).Append(bytes.AsMemory(i, 1));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }

    /// <summary>A response body that hands out at most a few bytes per read, as a slow network would.</summary>
    private sealed class TrickleStream(byte[] bytes, int bytesPerRead) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var count = Math.Min(Math.Min(buffer.Length, bytesPerRead), bytes.Length - _position);
            bytes.AsSpan(_position, count).CopyTo(buffer);
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
