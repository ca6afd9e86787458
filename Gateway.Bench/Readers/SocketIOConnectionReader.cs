using TromAi.Gateway.Upstream;
using TromAi.Gateway.Upstream.SocketIOWire;

namespace TromAi.Gateway.Bench.Readers;

/// <summary>The gateway's own client: <see cref="SocketIOConnection"/>, whose events already carry their relay arguments.</summary>
internal sealed class SocketIOConnectionReader : CountingReader, ISocketIOListener
{
    private SocketIOConnection? _connection;

    public override string SocketId => _connection!.SocketId;

    /// <param name="heldBufferBytes">0: zero-byte reads; else the buffer each connection holds (<see cref="SocketIOConnectionOptions.HeldReceiveBufferBytes"/>).</param>
    public static async Task<SocketIOConnectionReader> ConnectAsync(Uri upstream, int heldBufferBytes, CancellationToken cancellationToken)
    {
        var reader = new SocketIOConnectionReader();
        var options = new SocketIOConnectionOptions { HeldReceiveBufferBytes = heldBufferBytes };
        reader._connection = await SocketIOConnection.ConnectAsync(upstream, reader, options, cancellationToken);
        return reader;
    }

    public void OnEvent(string name, object?[] args) => Count(name);

    public void OnEvent(string name, EventArguments args) => Count(name);

    public void OnClosed(string reason)
    {
    }

    public override async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }
    }
}
