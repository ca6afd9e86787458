using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Tests.Infrastructure;

/// <summary>Builds SignalR <see cref="HubConnection"/>s that talk to a hub through <see cref="WebSocketConnectionFactory"/>.</summary>
internal static class HubClients
{
    // Connections built here, whose protocol understands the AnyArity marker (see OnAnyArity).
    private static readonly ConditionalWeakTable<HubConnection, object> AnyArityConnections = [];

    /// <summary>Builds an unstarted connection to <paramref name="hubUrl"/>.</summary>
    /// <param name="configure">
    /// Runs after the defaults, so it can add reconnect policies, logging or JSON options. The hub protocol is
    /// always the JSON protocol (wrapped for <see cref="OnAnyArity"/>), whatever it registers.
    /// </param>
    public static HubConnection Create(Uri hubUrl, Action<IHubConnectionBuilder>? configure = null) =>
        Create(hubUrl, new WebSocketConnectionFactory(), configure);

    /// <summary>Builds an unstarted connection that connects through <paramref name="factory"/> (query string, headers).</summary>
    public static HubConnection Create(Uri hubUrl, WebSocketConnectionFactory factory, Action<IHubConnectionBuilder>? configure = null)
    {
        var builder = new HubConnectionBuilder();
        builder.Services.AddSingleton<IConnectionFactory>(factory);
        builder.Services.AddSingleton<System.Net.EndPoint>(new UriEndPoint(hubUrl));
        builder.AddJsonProtocol();
        builder.ConfigureLogging(logging => logging.ClearProviders());

        configure?.Invoke(builder);

        // Registered last so it is the IHubProtocol the HubConnection resolves.
        builder.Services.AddSingleton<IHubProtocol>(services =>
            new AnyArityJsonHubProtocol(new JsonHubProtocol(services.GetRequiredService<IOptions<JsonHubProtocolOptions>>())));

        var connection = builder.Build();
        AnyArityConnections.AddOrUpdate(connection, factory);
        return connection;
    }

    public static Task<HubConnection> StartAsync(Uri hubUrl, Action<IHubConnectionBuilder>? configure = null, CancellationToken cancellationToken = default) =>
        StartAsync(hubUrl, new WebSocketConnectionFactory(), configure, cancellationToken);

    public static async Task<HubConnection> StartAsync(
        Uri hubUrl,
        WebSocketConnectionFactory factory,
        Action<IHubConnectionBuilder>? configure = null,
        CancellationToken cancellationToken = default)
    {
        var connection = Create(hubUrl, factory, configure);
        try
        {
            await connection.StartAsync(cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return connection;
    }

    /// <summary>
    /// The streaming guide's first steps: connect, listen to <paramref name="eventNames"/> (any
    /// number of arguments each), start, and ask for the id to send as <c>socketIOClientId</c>.
    /// </summary>
    public static async Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAndListenAsync(Uri hubUrl, params string[] eventNames)
    {
        var events = new EventRecorder();
        var connection = Create(hubUrl);
        events.Listen(connection, eventNames);
        try
        {
            await connection.StartAsync();
            return (connection, events, await connection.InvokeAsync<string>("GetSocketIOClientId"));
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts a connection and also returns its WebSocket transport, e.g. to call
    /// <see cref="WebSocketConnection.PauseReading"/>. After a reconnect the transport is a new one:
    /// read it from <see cref="WebSocketConnectionFactory.LastConnection"/>. A factory passed in must not be
    /// starting other connections at the same time.
    /// </summary>
    public static async Task<(HubConnection Connection, WebSocketConnection Transport)> StartWithTransportAsync(
        Uri hubUrl,
        WebSocketConnectionFactory? factory = null,
        Action<IHubConnectionBuilder>? configure = null,
        CancellationToken cancellationToken = default)
    {
        factory ??= new WebSocketConnectionFactory();
        var connection = await StartAsync(hubUrl, factory, configure, cancellationToken);
        return (connection, factory.LastConnection!);
    }

    /// <summary>
    /// Registers a handler for <paramref name="methodName"/> that receives every argument as a
    /// <see cref="JsonElement"/>, however many the server sends. <see cref="HubConnection.On(string, Type[], Func{object?[], object, Task}, object)"/>
    /// alone cannot do this: the JSON protocol binds arguments against the parameter types of the method's first
    /// handler and drops (logs) any invocation whose argument count differs. Only works on connections built by
    /// <see cref="Create(Uri, WebSocketConnectionFactory, Action{IHubConnectionBuilder}?)"/>, whose protocol
    /// sizes the binding to each message. Register it before any typed handler for the same method (the first
    /// handler's parameter types are the ones used), and do not mix the two kinds on one method.
    /// </summary>
    public static IDisposable OnAnyArity(this HubConnection connection, string methodName, Func<JsonElement[], Task> handler)
    {
        if (!AnyArityConnections.TryGetValue(connection, out _))
        {
            throw new InvalidOperationException($"{nameof(OnAnyArity)} needs a HubConnection built by {nameof(HubClients)}.{nameof(Create)}.");
        }

        return connection.On(
            methodName,
            [typeof(AnyArity)],
            static (args, state) => ((Func<JsonElement[], Task>)state)(Array.ConvertAll(args, static arg => (JsonElement)arg!)),
            handler);
    }

    // Marker parameter type: "bind as many JsonElements as the message carries".
    private static class AnyArity;

    /// <summary>
    /// The JSON hub protocol, except that a method whose handler declares the <see cref="AnyArity"/> marker is bound
    /// to one <see cref="JsonElement"/> per argument actually sent. It counts the arguments of each message before
    /// handing it, with a binder sized to that count, to the real <see cref="JsonHubProtocol"/>.
    /// </summary>
    private sealed class AnyArityJsonHubProtocol(JsonHubProtocol inner) : IHubProtocol
    {
        private const byte RecordSeparator = 0x1e;

        public string Name => inner.Name;

        public int Version => inner.Version;

        public TransferFormat TransferFormat => inner.TransferFormat;

        public bool IsVersionSupported(int version) => inner.IsVersionSupported(version);

        public void WriteMessage(HubMessage message, IBufferWriter<byte> output) => inner.WriteMessage(message, output);

        public ReadOnlyMemory<byte> GetMessageBytes(HubMessage message) => inner.GetMessageBytes(message);

        public bool TryParseMessage(ref ReadOnlySequence<byte> input, IInvocationBinder binder, [NotNullWhen(true)] out HubMessage? message)
        {
            if (input.PositionOf(RecordSeparator) is { } end && CountArguments(input.Slice(0, end)) is { } count)
            {
                binder = new SizedBinder(binder, count);
            }

            return inner.TryParseMessage(ref input, binder, out message);
        }

        // Counts the top-level "arguments" array of one JSON hub message; null when absent or unreadable, in which
        // case the inner protocol sees the message unchanged and reports any error itself.
        private static int? CountArguments(ReadOnlySequence<byte> frame)
        {
            try
            {
                var reader = new Utf8JsonReader(frame);
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return null;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isArguments = reader.ValueTextEquals("arguments"u8);
                    reader.Read();
                    if (isArguments && reader.TokenType == JsonTokenType.StartArray)
                    {
                        var count = 0;
                        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                        {
                            reader.Skip();
                            count++;
                        }

                        return count;
                    }

                    reader.Skip();
                }
            }
            catch (JsonException)
            {
            }

            return null;
        }
    }

    private sealed class SizedBinder(IInvocationBinder inner, int argumentCount) : IInvocationBinder
    {
        public IReadOnlyList<Type> GetParameterTypes(string methodName)
        {
            var types = inner.GetParameterTypes(methodName);
            return types is [var only] && only == typeof(AnyArity)
                ? Enumerable.Repeat(typeof(JsonElement), argumentCount).ToArray()
                : types;
        }

        public Type GetReturnType(string invocationId) => inner.GetReturnType(invocationId);

        public Type GetStreamItemType(string streamId) => inner.GetStreamItemType(streamId);

        public string? GetTarget(ReadOnlySpan<byte> utf8Bytes) => inner.GetTarget(utf8Bytes);
    }
}
