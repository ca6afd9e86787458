using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>What counts as the client being there: a completed message of its hub protocol, not just bytes.</summary>
public sealed class ClientActivityTests
{
    [Fact]
    public async Task Only_a_completed_message_resets_the_idle_time_and_bytes_read_again_count_once()
    {
        var time = new ManualTime();
        var pipe = new Pipe();
        var activity = new ClientActivity(pipe.Reader, time);

        time.Advance(TimeSpan.FromSeconds(5));
        await WriteAsync(pipe, """{"type":""");
        var partial = await activity.ReadAsync();
        activity.AdvanceTo(partial.Buffer.Start, partial.Buffer.End); // incomplete: kept, examined
        Assert.Equal(TimeSpan.FromSeconds(5), activity.Idle);

        time.Advance(TimeSpan.FromSeconds(5));
        await WriteAsync(pipe, "6}\u001e{\"ty");
        var completed = await activity.ReadAsync();
        Assert.Equal(TimeSpan.Zero, activity.Idle);
        var separator = completed.Buffer.PositionOf((byte)0x1e)!.Value;
        activity.AdvanceTo(completed.Buffer.GetPosition(1, separator), completed.Buffer.End); // the ping consumed, the rest kept

        time.Advance(TimeSpan.FromSeconds(5));
        await WriteAsync(pipe, "pe\":6");
        var again = await activity.ReadAsync(); // the old bytes come again with the new: no separator among the new ones
        Assert.Equal(TimeSpan.FromSeconds(5), activity.Idle);
        activity.AdvanceTo(again.Buffer.Start, again.Buffer.End);
    }

    [Fact]
    public async Task After_a_MessagePack_handshake_a_message_counts_once_its_length_prefix_says_it_is_complete()
    {
        var time = new ManualTime();
        var pipe = new Pipe();
        var activity = new ClientActivity(pipe.Reader, time);

        // The handshake is JSON whatever the protocol; a MessagePack ping (length 2: 0x91 0x06) follows in the same read, all but its last byte.
        time.Advance(TimeSpan.FromSeconds(5));
        await WriteAsync(pipe, "{\"protocol\":\"messagepack\",\"version\":1}\u001e");
        await pipe.Writer.WriteAsync(new byte[] { 0x02, 0x91 });
        var handshake = await activity.ReadAsync();
        Assert.Equal(TimeSpan.Zero, activity.Idle);
        var end = handshake.Buffer.PositionOf((byte)0x1e)!.Value;
        activity.AdvanceTo(handshake.Buffer.GetPosition(1, end), handshake.Buffer.End); // the handshake consumed, the ping's start kept

        time.Advance(TimeSpan.FromSeconds(5));
        await pipe.Writer.WriteAsync(new byte[] { 0x06 });
        var ping = await activity.ReadAsync();
        Assert.Equal(TimeSpan.Zero, activity.Idle);
        activity.AdvanceTo(ping.Buffer.End);

        // A 200-byte message (a two-byte length, 0xC8 0x01) whose body holds record separators: they end nothing.
        time.Advance(TimeSpan.FromSeconds(5));
        var body = Enumerable.Repeat((byte)0x1e, 200).ToArray();
        await pipe.Writer.WriteAsync(new byte[] { 0xC8 });
        await ReadAndKeepAsync(activity);
        await pipe.Writer.WriteAsync(new byte[] { 0x01 }.Concat(body.Take(199)).ToArray());
        await ReadAndKeepAsync(activity);
        Assert.Equal(TimeSpan.FromSeconds(5), activity.Idle); // one byte short: trickling does not keep a client alive

        await pipe.Writer.WriteAsync(body.AsMemory(199));
        var whole = await activity.ReadAsync();
        Assert.Equal(TimeSpan.Zero, activity.Idle);
        activity.AdvanceTo(whole.Buffer.End);
    }

    [Fact]
    public async Task After_a_JSON_handshake_a_length_like_byte_completes_nothing()
    {
        var time = new ManualTime();
        var pipe = new Pipe();
        var activity = new ClientActivity(pipe.Reader, time);
        await WriteAsync(pipe, "{\"protocol\":\"json\",\"version\":1}\u001e");
        await ReadAndConsumeAsync(activity);

        time.Advance(TimeSpan.FromSeconds(5));
        await pipe.Writer.WriteAsync(new byte[] { 0x00, 0x01, 0x02 }); // complete MessagePack messages, were it MessagePack
        await ReadAndKeepAsync(activity);
        Assert.Equal(TimeSpan.FromSeconds(5), activity.Idle);
    }

    private static async Task ReadAndKeepAsync(ClientActivity activity)
    {
        var read = await activity.ReadAsync();
        activity.AdvanceTo(read.Buffer.Start, read.Buffer.End);
    }

    private static async Task ReadAndConsumeAsync(ClientActivity activity)
    {
        var read = await activity.ReadAsync();
        activity.AdvanceTo(read.Buffer.End);
    }

    private static async Task WriteAsync(Pipe pipe, string text) => await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
