namespace TromAi.Gateway.Bridge;

/// <summary>
/// One item of a hub <c>Predict</c> stream: an upstream event, or the final <c>result</c>.
/// <see cref="Data"/> is the event's argument; null for an event without one, and the array of
/// them for an event with several.
/// </summary>
public sealed record PredictionEvent(string Event, object? Data)
{
    /// <summary>The last item of every successful stream; its data is TROM.AI's JSON answer.</summary>
    public const string Result = "result";

    internal static PredictionEvent From(string name, object?[] args) =>
        new(name, args.Length switch { 0 => null, 1 => args[0], _ => args });
}
