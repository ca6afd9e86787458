using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>
/// A kept stream far longer than one block of its storage reads back whole from any point, each event
/// byte for byte as the serializer writes it, and its bounds drop the oldest events across those blocks,
/// counting the same bytes and telling a reader that needed them where to start.
/// </summary>
public sealed class KeptStreamTests
{
    // What a kept event's JSON has always been: the serializer's own bytes with these options.
    private static readonly JsonSerializerOptions AsKept = new(JsonSerializerDefaults.Web) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [Fact]
    public void A_stream_of_many_segments_and_chunks_reads_back_whole_from_its_middle_each_event_as_serialized()
    {
        using var store = Store(new StreamsOptions { MaxEventsPerStream = 10_000, MaxBytesPerStream = 1L << 30, MaxTotalBytes = 1L << 32 });
        var stream = store.CreateStream(new StreamStart(StreamIds.New(), "flow", null, null));
        var sent = Enumerable.Range(1, 1_000).Select(Arguments).ToList();
        foreach (var args in sent)
        {
            stream.Append("token", args);
        }

        var answer = "{\"text\":\"done\"}"u8.ToArray();
        stream.Complete(answer);

        var items = ReadAll(stream, afterSeq: 333, expect: ReadState.Done);

        Assert.Equal(Enumerable.Range(334, 668).Select(i => (long)i), items.Select(i => i.Seq));
        Assert.Equal(sent.Skip(333).Select(AsJson), items.SkipLast(1).Select(i => Encoding.UTF8.GetString(i.Json.Span)));
        Assert.Equal(StreamItemKind.Result, items[^1].Kind);
        Assert.Equal(KeptStream.StreamOverhead + sent.Sum(Counted) + answer.Length, stream.Bytes);
    }

    [Fact]
    public void Trimming_by_MaxEventsPerStream_across_segments_keeps_the_newest_and_tells_an_older_reader_the_first_kept()
    {
        using var store = Store(new StreamsOptions { MaxEventsPerStream = 150 });
        var stream = store.CreateStream(new StreamStart(StreamIds.New(), "flow", null, null));
        var sent = Enumerable.Range(1, 500).Select(Arguments).ToList();
        foreach (var args in sent)
        {
            stream.Append("token", args);
        }

        var tooOld = stream.Read(349, [], 256);
        var kept = ReadAll(stream, afterSeq: 350, expect: ReadState.Waiting);

        Assert.Equal(ReadState.Trimmed, tooOld.State);
        Assert.Equal(351, tooOld.FirstKept);
        Assert.Equal(sent.Skip(350).Select(AsJson), kept.Select(i => Encoding.UTF8.GetString(i.Json.Span)));
        Assert.Equal(KeptStream.StreamOverhead + sent.Skip(350).Sum(Counted), stream.Bytes);
        Assert.Equal(store.TotalBytes, stream.Bytes);
    }

    [Fact]
    public void A_stream_emptied_by_the_instance_total_keeps_what_comes_next()
    {
        using var store = Store(new StreamsOptions());
        var stream = store.CreateStream(new StreamStart(StreamIds.New(), "flow", null, null));
        for (var i = 1; i <= 100; i++)
        {
            stream.Append("token", Arguments(i));
        }

        var freed = stream.DropOldest(long.MaxValue); // as the store does when MaxTotalBytes is reached
        var after = Enumerable.Range(101, 70).Select(Arguments).ToList();
        foreach (var args in after)
        {
            stream.Append("token", args);
        }

        Assert.Equal(Enumerable.Range(1, 100).Select(Arguments).Sum(Counted), freed);
        Assert.Equal(101, stream.Read(0, [], 256).FirstKept);
        Assert.Equal(after.Select(AsJson), ReadAll(stream, afterSeq: 100, expect: ReadState.Waiting).Select(i => Encoding.UTF8.GetString(i.Json.Span)));
        Assert.Equal(KeptStream.StreamOverhead + after.Sum(Counted), stream.Bytes);
        Assert.Equal(store.TotalBytes, stream.Bytes);
    }

    private static MemoryStreamStore Store(StreamsOptions streams) =>
        new(Options.Create(new GatewayOptions { Streams = streams }), TimeProvider.System, NullLogger<MemoryStreamStore>.Instance);

    /// <summary>The kinds of arguments the relay keeps, now and then one too large to share a chunk.</summary>
    private static object?[] Arguments(int i) => (i % 100, i % 3) switch
    {
        (0, _) => [new string('x', 10_000) + i],
        (_, 0) => [JsonDocument.Parse($$"""{"n":{{i}},"text":"é ✓ <\"quoted\"> &"}""").RootElement],
        (_, 1) => [new RawJson(Encoding.UTF8.GetBytes($"[{i},null,true]")), "plain"],
        _ => [$"t:{i} ünïcödé", i],
    };

    private static string AsJson(object?[] args) => JsonSerializer.Serialize(args, AsKept);

    private static long Counted(object?[] args) => JsonSerializer.SerializeToUtf8Bytes(args, AsKept).Length + KeptStream.EventOverhead;

    private static List<StreamItem> ReadAll(KeptStream stream, long afterSeq, ReadState expect)
    {
        var items = new List<StreamItem>();
        var batch = new List<StreamItem>();
        while (true)
        {
            var read = stream.Read(items.Count > 0 ? items[^1].Seq : afterSeq, batch, 256);
            items.AddRange(batch);
            batch.Clear();
            if (read.State != ReadState.More)
            {
                Assert.Equal(expect, read.State);
                return items;
            }
        }
    }
}
