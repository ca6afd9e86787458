namespace TromAi.Gateway.Upstream;

/// <summary>
/// An upstream event's arguments as the reader hands them over, with nothing allocated that a relay does
/// not need. Nearly every TROM.AI event (a token above all) has exactly one argument: that one travels as
/// the bytes of its JSON value, and the relay writes them into SignalR's message itself. Events with
/// several arguments, none, or binary attachments travel as the array <see cref="ToArray"/> gives.
/// </summary>
internal readonly struct EventArguments
{
    // Either the UTF-8 bytes of the one argument's JSON (validated by the reader, never changed) or the
    // array of arguments. One field, so the struct costs a queue slot no more than an array reference did.
    private readonly object _value;

    private EventArguments(object value) => _value = value;

    /// <param name="utf8">Exactly one JSON value, validated; owned by the arguments from now on.</param>
    public static EventArguments Json(byte[] utf8) => new(utf8);

    public static EventArguments Of(object?[] args) => new(args);

    /// <summary>The bytes of the one JSON argument, when the event has exactly one that was read as JSON.</summary>
    public bool TryGetJson(out byte[] utf8)
    {
        if (_value is byte[] bytes)
        {
            utf8 = bytes;
            return true;
        }

        utf8 = null!;
        return false;
    }

    /// <summary>The arguments as objects (each JSON value a <see cref="RawJson"/>): for whoever keeps them beyond the send.</summary>
    public object?[] ToArray() => _value as object?[] ?? [new RawJson((byte[])_value)];

    public override string ToString() => _value switch
    {
        byte[] bytes => new RawJson(bytes).ToString(),
        object?[] args => $"{args.Length} arguments",
        _ => "none",
    };
}
