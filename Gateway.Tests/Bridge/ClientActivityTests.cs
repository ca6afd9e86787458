using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Tests.Bridge;

/// <summary>What counts as the client being there: a completed message, not just bytes.</summary>
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

    private static async Task WriteAsync(Pipe pipe, string text) => await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
