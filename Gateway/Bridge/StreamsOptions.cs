namespace TromAi.Gateway.Bridge;

/// <summary>
/// The <c>Gateway:Streams</c> section: how long and how much of each prediction's stream the gateway
/// keeps, so that a client that lost its connection can resume it (README, "Resumable answers").
/// </summary>
public sealed class StreamsOptions
{
    public const string SectionName = GatewayOptions.SectionName + ":Streams";

    /// <summary>How long a stream stays replayable once its prediction has ended.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long a prediction runs on after its client went away without cancelling it (a reload, a
    /// lost network, a closed lid); past it the gateway aborts it upstream and ends its stream with an
    /// error that names this setting. Its upstream session stays open that long at most.
    /// </summary>
    public TimeSpan DetachedTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Events kept per stream; past it the oldest are dropped, and a resume that needs them is refused.</summary>
    public int MaxEventsPerStream { get; set; } = 10_000;

    /// <summary>Bytes of events kept per stream (their JSON arguments, plus 32 per event); past it the oldest are dropped.</summary>
    public long MaxBytesPerStream { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Bytes this instance keeps in memory for every stream together, answers included (plus 256 per
    /// stream). Past it the streams that ended longest ago are forgotten first; then the stream being
    /// written drops its oldest events.
    /// </summary>
    public long MaxTotalBytes { get; set; } = 256 * 1024 * 1024;
}
