namespace TromAi.Gateway.Bridge;

/// <summary>
/// One item of a hub <c>Predict</c> or <c>Resume</c> stream: the stream's header
/// (<c>gateway:stream</c>, sequence number 0), an upstream event, or the final <c>result</c>.
/// <see cref="Data"/> is the event's argument; null for an event without one, and the array of
/// them for an event with several.
/// </summary>
public sealed record PredictionEvent(string Event, object? Data)
{
    /// <summary>The last item of every successful stream; its data is TROM.AI's JSON answer.</summary>
    public const string Result = "result";

    /// <summary>
    /// The item's place in its stream: 0 for the header, then 1, 2, ... for the events in order and
    /// the result. A client keeps the last one it got, to resume after it.
    /// </summary>
    public long Seq { get; init; }

    internal static PredictionEvent From(string name, object?[] args) =>
        new(name, args.Length switch { 0 => null, 1 => args[0], _ => args });
}
