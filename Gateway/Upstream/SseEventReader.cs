using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace TromAi.Gateway.Upstream;

/// <summary>
/// One event of an SSE-era TROM.AI answer: a block whose data is <c>{"event":"token","data":"Hel"}</c>.
/// </summary>
/// <param name="Event">The JSON's <c>event</c> member. The names TROM.AI sends are shared string instances, so a token costs no name string.</param>
/// <param name="Data">The JSON's <c>data</c> member; <see cref="JsonValueKind.Undefined"/> when the block has none.</param>
/// <param name="Whole">The whole JSON object, for members beside <c>data</c>: <c>thinking</c> carries a top-level <c>duration</c>.</param>
internal readonly record struct UpstreamSseEvent(string Event, JsonElement Data, JsonElement Whole)
{
    private static readonly object?[] NoArguments = [];

    /// <summary>
    /// The arguments a SignalR client receives, the same as in the Socket.IO era so a client cannot
    /// tell which way TROM.AI streamed: <c>end</c> and <c>abort</c> carried no argument there (their SSE
    /// <c>"[DONE]"</c> is framing, not payload); <c>thinking</c>, new with SSE, gets its <c>duration</c> as
    /// a second argument because it would otherwise be lost; everything else is its <c>data</c>, unchanged.
    /// </summary>
    public object?[] ToArguments()
    {
        if (Data.ValueKind == JsonValueKind.Undefined
            || (Event is "end" or "abort" && Data.ValueKind == JsonValueKind.String && Data.ValueEquals("[DONE]"u8)))
        {
            return NoArguments;
        }

        if (Event == "thinking" && Whole.TryGetProperty("duration"u8, out var duration))
        {
            return [Data, duration];
        }

        return [Data];
    }
}

/// <summary>
/// Incremental parser of TROM.AI's SSE wire format (protocol part 2): blocks of lines separated by a
/// blank line, each block one <c>data:</c> JSON object naming its event. It works on bytes as they
/// arrive, in any pieces: a line, a block or a multi-byte character may be split anywhere, because
/// only a whole block's bytes are ever decoded (by the JSON parser, once).
/// <para>
/// The decoder has the shape of SignalR's <c>IHubProtocol.TryParseMessage</c>: it takes a
/// <see cref="ReadOnlySequence{T}"/>, consumes complete lines and leaves a partial one for the next
/// call. A <see cref="PipeReader"/> keeps those unconsumed bytes in pooled segments across reads, so
/// there is no line buffer here to grow or compact: only a block's <c>data</c> is copied, once, into
/// the buffer the JSON parser reads. <see cref="ReadAllAsync(Stream, Action{string}?, int, CancellationToken)"/>
/// drives it over an HTTP response stream.
/// </para>
/// <para>
/// Tolerated, as TROM.AI and the SSE spec require: <c>\n</c>, <c>\r\n</c> and <c>\r</c> line ends;
/// <c>message:</c>, <c>message</c> (2.1.0 to 3.1.0 wrote <c>end</c>, <c>abort</c> and <c>error</c> that way),
/// <c>event:</c>, <c>id:</c> and any other field, all ignored because TROM.AI names the event inside
/// the JSON; <c>data:</c> with or without one space; several <c>data</c> lines in a block, joined with
/// <c>\n</c>; <c>:heartbeat</c> and other comments; a leading byte order mark; a last block ended by
/// the end of the response instead of a blank line.
/// </para>
/// <para>
/// A block whose data is not a JSON object with a string <c>event</c> is skipped and reported
/// (<see cref="SkippedBlocks"/> and the <c>onSkipped</c> callback, to be logged), never thrown: SSE
/// events are independent, so one block nobody can read says nothing about the next, and failing the
/// stream would lose a whole answer over, say, a proxy's keep-alive line. A block or line longer than
/// the limit does throw <see cref="InvalidDataException"/>: skipping it would mean buffering it anyway.
/// </para>
/// Not thread-safe: one instance per response.
/// </summary>
internal sealed class SseEventReader
{
    /// <summary>Default bound of one block's data: large <c>sourceDocuments</c> or <c>agentReasoning</c> fit, a runaway line does not.</summary>
    public const int DefaultMaxBlockBytes = 32 * 1024 * 1024;

    // Past this, the data buffer is dropped after its block: one huge block must not pin its memory for a long token stream.
    private const int RetainedBufferBytes = 64 * 1024;
    private const int PreviewBytes = 200;

    private static readonly string[] KnownEvents =
    [
        "token", "start", "end", "metadata", "thinking", "sourceDocuments", "artifacts", "usedTools", "calledTools",
        "fileAnnotations", "tool", "agentReasoning", "nextAgent", "nextAgentFlow", "agentFlowExecutedData",
        "agentFlowEvent", "action", "usageMetadata", "error", "abort", "tts_start", "tts_data", "tts_end", "tts_abort",
    ];

    private static readonly byte[][] KnownEventsUtf8 = Array.ConvertAll(KnownEvents, Encoding.UTF8.GetBytes);

    private readonly int _maxBlockBytes;
    private readonly Action<string>? _onSkipped;
    private ArrayBufferWriter<byte> _data = new();
    private bool _hasData;
    private bool _afterCarriageReturn;
    private bool _byteOrderMarkChecked;

    /// <param name="onSkipped">Told why a block was skipped (with the start of its data); for a log line.</param>
    /// <param name="maxBlockBytes">Largest block data, and longest line, accepted.</param>
    public SseEventReader(Action<string>? onSkipped = null, int maxBlockBytes = DefaultMaxBlockBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBlockBytes, 1);
        _onSkipped = onSkipped;
        _maxBlockBytes = maxBlockBytes;
    }

    /// <summary>Blocks with data that was not a TROM.AI event, so far.</summary>
    public int SkippedBlocks { get; private set; }

    /// <summary>Whether a response's media type (<c>Content-Type</c> without parameters) is SSE. TROM.AI answers plain JSON instead when the flow cannot stream.</summary>
    public static bool IsEventStream(string? mediaType) => string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The events of an SSE response body, each yielded as soon as its block is complete. Ends at the
    /// end of the stream, which stays open (its owner, the HTTP response, disposes it). A connection
    /// lost mid-answer surfaces as the stream's <see cref="IOException"/>.
    /// </summary>
    public static IAsyncEnumerable<UpstreamSseEvent> ReadAllAsync(
        Stream body, Action<string>? onSkipped = null, int maxBlockBytes = DefaultMaxBlockBytes, CancellationToken cancellationToken = default) =>
        ReadAsync(PipeReader.Create(body, new StreamPipeReaderOptions(leaveOpen: true)), ownsInput: true, new SseEventReader(onSkipped, maxBlockBytes), cancellationToken);

    /// <summary>The events read from <paramref name="input"/>, which is left advanced past them and not completed.</summary>
    public static IAsyncEnumerable<UpstreamSseEvent> ReadAllAsync(
        PipeReader input, Action<string>? onSkipped = null, int maxBlockBytes = DefaultMaxBlockBytes, CancellationToken cancellationToken = default) =>
        ReadAsync(input, ownsInput: false, new SseEventReader(onSkipped, maxBlockBytes), cancellationToken);

    private static async IAsyncEnumerable<UpstreamSseEvent> ReadAsync(
        PipeReader input, bool ownsInput, SseEventReader parser, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var buffer = ReadOnlySequence<byte>.Empty;
        var reading = false;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken);
                buffer = result.Buffer;
                reading = true;
                while (parser.TryRead(ref buffer, result.IsCompleted, out var sseEvent))
                {
                    // The event owns its JSON, so the pipe's bytes may stay unadvanced while the consumer works.
                    yield return sseEvent;
                }

                // Examined to the end: the pipe must not hand back the same partial line before more bytes come.
                reading = false;
                input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    yield break;
                }
            }
        }
        finally
        {
            if (reading)
            {
                input.AdvanceTo(buffer.Start); // a consumer that stopped early leaves a caller's pipe readable
            }

            if (ownsInput)
            {
                await input.CompleteAsync();
            }
        }
    }

    /// <summary>
    /// Consumes complete lines from the start of <paramref name="buffer"/> until a block completes.
    /// </summary>
    /// <param name="buffer">Bytes not consumed yet; on return, sliced past what was consumed. A partial last line stays in it, for the next call with more bytes behind it.</param>
    /// <param name="isFinalBlock">No bytes follow: the last line and the last block end here, blank line or not.</param>
    /// <returns>True with an event when a block completed; false when more bytes are needed (or, at the end, none are left).</returns>
    /// <exception cref="InvalidDataException">A block's data, or a line, is larger than the limit.</exception>
    public bool TryRead(ref ReadOnlySequence<byte> buffer, bool isFinalBlock, out UpstreamSseEvent sseEvent)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!_byteOrderMarkChecked && !SkipByteOrderMark(ref reader, isFinalBlock))
        {
            sseEvent = default;
            return false;
        }

        while (true)
        {
            // A CR ended the last line; a LF right after it is the same line end, not a blank line.
            if (_afterCarriageReturn && reader.TryPeek(out var next))
            {
                _afterCarriageReturn = false;
                if (next == (byte)'\n')
                {
                    reader.Advance(1);
                }
            }

            if (reader.TryReadToAny(out ReadOnlySequence<byte> line, "\r\n"u8, advancePastDelimiter: false))
            {
                reader.TryRead(out var lineEnd);
                _afterCarriageReturn = lineEnd == (byte)'\r';
                if (OnLine(line, out sseEvent))
                {
                    buffer = buffer.Slice(reader.Position);
                    return true;
                }

                continue;
            }

            if (isFinalBlock)
            {
                // The browser's EventSource drops a block the response ends in; TROM.AI's last block may come
                // without its blank line (even without its newline), and its JSON is self-delimiting, so one
                // cut short is reported as malformed instead of being mistaken for a whole one.
                if (!reader.End)
                {
                    var rest = reader.UnreadSequence;
                    reader.AdvanceToEnd();
                    OnLine(rest, out _); // a non-empty line never completes a block
                }

                _afterCarriageReturn = false;
                var dispatched = TryDispatch(out sseEvent);
                buffer = buffer.Slice(reader.Position);
                return dispatched;
            }

            if (reader.Remaining > _maxBlockBytes)
            {
                throw TooLarge("A line");
            }

            break;
        }

        buffer = buffer.Slice(reader.Position);
        sseEvent = default;
        return false;
    }

    /// <summary>The SSE spec drops one leading UTF-8 BOM. It may arrive a byte at a time: until three bytes (or a mismatch) are known, wait.</summary>
    private bool SkipByteOrderMark(ref SequenceReader<byte> reader, bool isFinalBlock)
    {
        ReadOnlySpan<byte> bom = [0xEF, 0xBB, 0xBF];
        Span<byte> head = stackalloc byte[3];
        var available = (int)Math.Min(reader.Remaining, bom.Length);
        reader.TryCopyTo(head[..available]);
        if (head[..available].SequenceEqual(bom[..available]))
        {
            if (available < bom.Length && !isFinalBlock)
            {
                return false;
            }

            if (available == bom.Length)
            {
                reader.Advance(available);
            }
        }

        _byteOrderMarkChecked = true;
        return true;
    }

    /// <summary>One line, without its line end. True when it was the blank line that completes a block with an event.</summary>
    private bool OnLine(ReadOnlySequence<byte> line, out UpstreamSseEvent sseEvent)
    {
        if (line.IsEmpty)
        {
            return TryDispatch(out sseEvent);
        }

        sseEvent = default;
        ReadOnlySequence<byte> field, value;
        if (line.PositionOf((byte)':') is { } colon)
        {
            field = line.Slice(0, colon);
            value = line.Slice(line.GetPosition(1, colon));
        }
        else
        {
            field = line; // `message` and `data` without a colon: a field with an empty value
            value = ReadOnlySequence<byte>.Empty;
        }

        if (!IsDataField(field))
        {
            return false; // comments (an empty field name: `:heartbeat`), `message`, `event`, `id`, `retry`...
        }

        if (!value.IsEmpty && FirstByte(value) == (byte)' ')
        {
            value = value.Slice(1);
        }

        var separator = _hasData ? 1 : 0;
        if (_data.WrittenCount + separator + value.Length > _maxBlockBytes)
        {
            throw TooLarge("A block");
        }

        if (_hasData)
        {
            _data.Write("\n"u8);
        }

        foreach (var segment in value)
        {
            _data.Write(segment.Span);
        }

        _hasData = true;
        return false;
    }

    private bool TryDispatch(out UpstreamSseEvent sseEvent)
    {
        sseEvent = default;
        if (!_hasData)
        {
            return false; // a block of comments and `message` lines only
        }

        _hasData = false;
        try
        {
            var data = _data.WrittenSpan;
            // An empty `data:` is an SSE keep-alive some servers and proxies send, not a TROM.AI event: nothing to report.
            return data.IndexOfAnyExcept(" \t\r\n"u8) >= 0 && TryParse(data, out sseEvent);
        }
        finally
        {
            if (_data.Capacity > RetainedBufferBytes)
            {
                _data = new ArrayBufferWriter<byte>();
            }
            else
            {
                _data.ResetWrittenCount();
            }
        }
    }

    private bool TryParse(ReadOnlySpan<byte> data, out UpstreamSseEvent sseEvent)
    {
        sseEvent = default;
        JsonElement whole;
        var json = new Utf8JsonReader(data);
        try
        {
            // ParseValue copies the bytes into a document of its own (no pooled arrays to return), so the
            // element outlives this buffer and needs no disposal.
            whole = JsonElement.ParseValue(ref json);
            json.Read(); // throws when something other than whitespace follows the value
        }
        catch (JsonException e)
        {
            Skip($"not JSON ({e.Message})", data);
            return false;
        }

        if (whole.ValueKind != JsonValueKind.Object
            || !whole.TryGetProperty("event"u8, out var name)
            || name.ValueKind != JsonValueKind.String)
        {
            Skip("not a TROM.AI event (a JSON object with a string \"event\")", data);
            return false;
        }

        whole.TryGetProperty("data"u8, out var value); // absent: Undefined, an event without arguments
        sseEvent = new UpstreamSseEvent(EventName(name), value, whole);
        return true;
    }

    private static string EventName(JsonElement name)
    {
        var known = KnownEventsUtf8;
        for (var i = 0; i < known.Length; i++)
        {
            if (name.ValueEquals(known[i]))
            {
                return KnownEvents[i];
            }
        }

        return name.GetString()!;
    }

    private void Skip(string reason, ReadOnlySpan<byte> data)
    {
        SkippedBlocks++;
        if (_onSkipped is not null)
        {
            var preview = Encoding.UTF8.GetString(data[..Math.Min(data.Length, PreviewBytes)]);
            _onSkipped($"Skipped an SSE block from TROM.AI: {reason}: {preview}{(data.Length > PreviewBytes ? "..." : "")}");
        }
    }

    private static bool IsDataField(ReadOnlySequence<byte> field)
    {
        if (field.Length != 4)
        {
            return false;
        }

        if (field.IsSingleSegment)
        {
            return field.FirstSpan.SequenceEqual("data"u8);
        }

        Span<byte> name = stackalloc byte[4];
        field.CopyTo(name);
        return name.SequenceEqual("data"u8);
    }

    // Not FirstSpan[0]: a slice may begin with an empty segment.
    private static byte FirstByte(ReadOnlySequence<byte> value)
    {
        foreach (var segment in value)
        {
            if (!segment.IsEmpty)
            {
                return segment.Span[0];
            }
        }

        return 0;
    }

    private InvalidDataException TooLarge(string what) =>
        new($"{what} of TROM.AI's SSE answer is larger than the gateway's limit of {_maxBlockBytes} bytes.");
}
