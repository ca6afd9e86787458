using System.Text;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;

namespace TromAi.Gateway.Scaleout;

/// <summary>
/// The bytes the backplane publishes. Every message starts with a format version byte; strings are UTF-8 behind a
/// 7-bit variable-length byte count (as <see cref="BinaryWriter"/> writes them), integers are variable-length too.
/// </summary>
/// <remarks>
/// An invocation carries the hub message already serialized by each hub protocol this hub supports, so the instance
/// that receives it writes those bytes to each of its connections as they are, whatever protocol the connection
/// speaks: one serialization per protocol per send, none per receiving connection. It also names its sender, so the
/// sender (which has delivered to its own connections directly) skips its own copy.
/// </remarks>
internal sealed class RedisBackplaneProtocol
{
    private const byte FormatVersion = 1;

    private readonly IHubProtocol[] _protocols;
    private readonly byte[][] _protocolNames;
    private readonly byte[] _sender;

    public RedisBackplaneProtocol(IReadOnlyList<IHubProtocol> protocols, string instanceId)
    {
        _protocols = [.. protocols];
        _protocolNames = Array.ConvertAll(_protocols, protocol => Encoding.UTF8.GetBytes(protocol.Name));
        _sender = Encoding.UTF8.GetBytes(instanceId);
    }

    public enum GroupAction : byte
    {
        Add = 1,
        Remove = 2,
    }

    /// <summary>An invocation from another instance.</summary>
    /// <param name="Sender">The sending instance; read only when <paramref name="InvocationId"/> asks for a result to return to it.</param>
    public readonly record struct Invocation(SerializedHubMessage Message, string[]? ExcludedConnectionIds, string? InvocationId, string? Sender);

    /// <summary>A group change asked for by <paramref name="Sender"/>, which waits for ack <paramref name="AckId"/>.</summary>
    public sealed record GroupCommand(string Sender, int AckId, GroupAction Action, string GroupName, string ConnectionId);

    /// <summary>The hub protocols every invocation is serialized with.</summary>
    public IReadOnlyList<IHubProtocol> Protocols => _protocols;

    // version | sender | excluded count | excluded ids | invocation id ("" for none) | protocol count | (name | length | bytes)*
    public byte[] WriteInvocation(SerializedHubMessage message, IReadOnlyList<string>? excludedConnectionIds = null, string? invocationId = null)
    {
        var excludedCount = excludedConnectionIds?.Count ?? 0;
        var size = 1 + BytesSize(_sender.Length) + VarIntSize(excludedCount) + StringSize(invocationId) + VarIntSize(_protocols.Length);
        for (var i = 0; i < excludedCount; i++)
        {
            size += StringSize(excludedConnectionIds![i]);
        }

        // SerializedHubMessage caches each protocol's bytes, so asking twice (size, then copy) serializes once.
        for (var i = 0; i < _protocols.Length; i++)
        {
            size += BytesSize(_protocolNames[i].Length) + BytesSize(message.GetSerializedMessage(_protocols[i]).Length);
        }

        var buffer = new byte[size];
        var writer = new Writer(buffer);
        writer.WriteByte(FormatVersion);
        writer.WriteBytes(_sender);
        writer.WriteVarInt(excludedCount);
        for (var i = 0; i < excludedCount; i++)
        {
            writer.WriteString(excludedConnectionIds![i]);
        }

        writer.WriteString(invocationId);
        writer.WriteVarInt(_protocols.Length);
        for (var i = 0; i < _protocols.Length; i++)
        {
            writer.WriteBytes(_protocolNames[i]);
            writer.WriteBytes(message.GetSerializedMessage(_protocols[i]).Span);
        }

        writer.AssertFull();
        return buffer;
    }

    /// <summary>Reads an invocation; null when this instance sent it.</summary>
    /// <remarks>The serialized payloads are slices of <paramref name="data"/>, which must not be reused.</remarks>
    public Invocation? ReadInvocation(byte[] data)
    {
        var reader = new Reader(data);
        reader.ReadVersion();
        var sender = reader.ReadBytes();
        if (sender.SequenceEqual(_sender))
        {
            return null;
        }

        var excludedCount = reader.ReadVarInt();
        string[]? excluded = null;
        if (excludedCount > 0)
        {
            excluded = new string[excludedCount];
            for (var i = 0; i < excludedCount; i++)
            {
                excluded[i] = reader.ReadString();
            }
        }

        var invocationId = reader.ReadString();
        var protocolCount = reader.ReadVarInt();
        var serializations = new SerializedMessage[protocolCount];
        for (var i = 0; i < protocolCount; i++)
        {
            var name = ProtocolName(reader.ReadBytes());
            var (offset, length) = reader.ReadRange();
            serializations[i] = new SerializedMessage(name, new ReadOnlyMemory<byte>(data, offset, length));
        }

        return invocationId.Length == 0
            ? new Invocation(new SerializedHubMessage(serializations), excluded, null, null)
            : new Invocation(new SerializedHubMessage(serializations), excluded, invocationId, Encoding.UTF8.GetString(sender));
    }

    // version | sender | ack id | action | group | connection id
    public byte[] WriteGroupCommand(int ackId, GroupAction action, string groupName, string connectionId)
    {
        var buffer = new byte[2 + BytesSize(_sender.Length) + VarIntSize(ackId) + StringSize(groupName) + StringSize(connectionId)];
        var writer = new Writer(buffer);
        writer.WriteByte(FormatVersion);
        writer.WriteBytes(_sender);
        writer.WriteVarInt(ackId);
        writer.WriteByte((byte)action);
        writer.WriteString(groupName);
        writer.WriteString(connectionId);
        writer.AssertFull();
        return buffer;
    }

    /// <summary>Reads a group command; null when this instance sent it.</summary>
    public GroupCommand? ReadGroupCommand(byte[] data)
    {
        var reader = new Reader(data);
        reader.ReadVersion();
        var sender = reader.ReadBytes();
        if (sender.SequenceEqual(_sender))
        {
            return null;
        }

        var ackId = reader.ReadVarInt();
        var action = (GroupAction)reader.ReadByte();
        if (action is not (GroupAction.Add or GroupAction.Remove))
        {
            throw new InvalidDataException($"Unknown group action {(byte)action}.");
        }

        return new GroupCommand(Encoding.UTF8.GetString(sender), ackId, action, reader.ReadString(), reader.ReadString());
    }

    // version | ack id
    public static byte[] WriteAck(int ackId)
    {
        var buffer = new byte[1 + VarIntSize(ackId)];
        var writer = new Writer(buffer);
        writer.WriteByte(FormatVersion);
        writer.WriteVarInt(ackId);
        return buffer;
    }

    public static int ReadAck(byte[] data)
    {
        var reader = new Reader(data);
        reader.ReadVersion();
        return reader.ReadVarInt();
    }

    // version | protocol name | the completion message as that protocol serialized it
    public static byte[] WriteCompletion(string protocolName, ReadOnlySpan<byte> completion)
    {
        var buffer = new byte[1 + StringSize(protocolName) + BytesSize(completion.Length)];
        var writer = new Writer(buffer);
        writer.WriteByte(FormatVersion);
        writer.WriteString(protocolName);
        writer.WriteBytes(completion);
        writer.AssertFull();
        return buffer;
    }

    public (string ProtocolName, ReadOnlyMemory<byte> Completion) ReadCompletion(byte[] data)
    {
        var reader = new Reader(data);
        reader.ReadVersion();
        var name = ProtocolName(reader.ReadBytes());
        var (offset, length) = reader.ReadRange();
        return (name, new ReadOnlyMemory<byte>(data, offset, length));
    }

    // The configured protocols' own name strings, so reading a message allocates no name.
    private string ProtocolName(ReadOnlySpan<byte> utf8)
    {
        for (var i = 0; i < _protocolNames.Length; i++)
        {
            if (utf8.SequenceEqual(_protocolNames[i]))
            {
                return _protocols[i].Name;
            }
        }

        return Encoding.UTF8.GetString(utf8);
    }

    private static int StringSize(string? value) => BytesSize(value is null ? 0 : Encoding.UTF8.GetByteCount(value));

    private static int BytesSize(int length) => VarIntSize(length) + length;

    private static int VarIntSize(int value)
    {
        var size = 1;
        for (var rest = (uint)value >> 7; rest != 0; rest >>= 7)
        {
            size++;
        }

        return size;
    }

    private ref struct Writer(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;
        private int _position;

        public void WriteByte(byte value) => _buffer[_position++] = value;

        public void WriteVarInt(int value)
        {
            var rest = (uint)value;
            while (rest >= 0x80)
            {
                _buffer[_position++] = (byte)(rest | 0x80);
                rest >>= 7;
            }

            _buffer[_position++] = (byte)rest;
        }

        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            WriteVarInt(bytes.Length);
            bytes.CopyTo(_buffer[_position..]);
            _position += bytes.Length;
        }

        public void WriteString(string? value)
        {
            if (string.IsNullOrEmpty(value))
            {
                WriteVarInt(0);
                return;
            }

            WriteVarInt(Encoding.UTF8.GetByteCount(value));
            _position += Encoding.UTF8.GetBytes(value, _buffer[_position..]);
        }

        public readonly void AssertFull()
        {
            if (_position != _buffer.Length)
            {
                throw new InvalidOperationException($"Backplane message sized {_buffer.Length} bytes but {_position} were written.");
            }
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        public void ReadVersion()
        {
            var version = ReadByte();
            if (version != FormatVersion)
            {
                // Another gateway version shares this Redis: drop what we cannot read rather than misread it.
                throw new InvalidDataException($"Backplane message format {version} is not supported (this instance reads format {FormatVersion}).");
            }
        }

        public byte ReadByte() =>
            _position < _data.Length ? _data[_position++] : throw Truncated();

        public int ReadVarInt()
        {
            uint result = 0;
            for (var shift = 0; shift < 35; shift += 7)
            {
                var b = ReadByte();
                result |= (uint)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return result <= int.MaxValue ? (int)result : throw new InvalidDataException("Backplane message has a negative length.");
                }
            }

            throw new InvalidDataException("Backplane message has a malformed variable-length integer.");
        }

        public (int Offset, int Length) ReadRange()
        {
            var length = ReadVarInt();
            if (length > _data.Length - _position)
            {
                throw Truncated();
            }

            var offset = _position;
            _position += length;
            return (offset, length);
        }

        public ReadOnlySpan<byte> ReadBytes()
        {
            var (offset, length) = ReadRange();
            return _data.Slice(offset, length);
        }

        public string ReadString()
        {
            var bytes = ReadBytes();
            return bytes.IsEmpty ? string.Empty : Encoding.UTF8.GetString(bytes);
        }

        private static InvalidDataException Truncated() => new("Backplane message is truncated.");
    }
}
