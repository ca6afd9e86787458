namespace TromAi.Gateway.Upstream.SocketIOWire;

internal enum SocketIOPacketType
{
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

/// <summary>
/// The header of a Socket.IO v5 packet (the text after Engine.IO's <c>4</c>):
/// <c>&lt;type&gt;[&lt;attachments&gt;-][&lt;/namespace&gt;,][&lt;ack id&gt;][JSON]</c>, as spans of the frame.
/// </summary>
internal readonly ref struct SocketIOPacket
{
    public SocketIOPacketType Type { get; init; }

    /// <summary>Binary frames that follow (binary event and ack only).</summary>
    public int Attachments { get; init; }

    /// <summary>Empty for the main namespace.</summary>
    public ReadOnlySpan<byte> Namespace { get; init; }

    /// <summary>-1 when the packet asks for no acknowledgement.</summary>
    public long AckId { get; init; }

    /// <summary>The JSON payload; may be empty.</summary>
    public ReadOnlySpan<byte> Data { get; init; }

    public bool IsMainNamespace => Namespace.IsEmpty || Namespace is [(byte)'/'];

    /// <exception cref="SocketIOProtocolException">Not a Socket.IO v5 packet.</exception>
    public static SocketIOPacket Parse(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty || packet[0] is < (byte)'0' or > (byte)'6')
        {
            throw new SocketIOProtocolException(packet.IsEmpty ? "an empty Socket.IO packet" : $"unknown Socket.IO packet type '{(char)packet[0]}'");
        }

        var type = (SocketIOPacketType)(packet[0] - '0');
        var i = 1;
        var attachments = 0;
        if (type is SocketIOPacketType.BinaryEvent or SocketIOPacketType.BinaryAck)
        {
            var digits = Digits(packet[i..]);
            if (digits == 0 || i + digits >= packet.Length || packet[i + digits] != '-' || digits > 6)
            {
                throw new SocketIOProtocolException("a binary packet without its attachment count");
            }

            attachments = (int)ParseNumber(packet.Slice(i, digits));
            i += digits + 1;
        }

        var ns = ReadOnlySpan<byte>.Empty;
        if (i < packet.Length && packet[i] == '/')
        {
            var comma = packet[i..].IndexOf((byte)',');
            var end = comma < 0 ? packet.Length : i + comma;
            ns = packet[i..end];
            i = comma < 0 ? end : end + 1;
        }

        var ackId = -1L;
        var ackDigits = Digits(packet[i..]);
        if (ackDigits > 0)
        {
            if (ackDigits > 15)
            {
                throw new SocketIOProtocolException("an acknowledgement id out of range");
            }

            ackId = ParseNumber(packet.Slice(i, ackDigits));
            i += ackDigits;
        }

        return new SocketIOPacket { Type = type, Attachments = attachments, Namespace = ns, AckId = ackId, Data = packet[i..] };
    }

    private static int Digits(ReadOnlySpan<byte> text)
    {
        var n = 0;
        while (n < text.Length && text[n] is >= (byte)'0' and <= (byte)'9')
        {
            n++;
        }

        return n;
    }

    /// <param name="digits">At most 15, so the value fits.</param>
    private static long ParseNumber(ReadOnlySpan<byte> digits)
    {
        long value = 0;
        foreach (var digit in digits)
        {
            value = value * 10 + (digit - '0');
        }

        return value;
    }
}
