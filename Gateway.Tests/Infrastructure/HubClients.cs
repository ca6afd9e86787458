using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using MessagePack;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Http.Connections.Client;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests.Infrastructure;

/// <summary>
/// Builds SignalR <see cref="HubConnection"/>s the way the README tells users to:
/// <c>new HubConnectionBuilder().WithUrl(hubUrl)</c>, with negotiation and every transport, JSON unless the test
/// chooses MessagePack (<c>configure: b =&gt; b.AddMessagePackProtocol()</c>). Connections built here also take
/// <see cref="OnAnyArity"/> handlers.
/// </summary>
internal static class HubClients
{
    // Connections built here, whose protocol understands the AnyArity marker (see OnAnyArity).
    private static readonly ConditionalWeakTable<HubConnection, object> AnyArityConnections = [];
    private static readonly object Built = new();
    private static readonly JsonElement NullElement = JsonDocument.Parse("null").RootElement;

    /// <summary>
    /// For <c>connection:</c>: WebSockets without negotiation, one HTTP request per connection, as a client
    /// behind a load balancer without affinity connects (README, "Sticky sessions").
    /// </summary>
    public static readonly Action<HttpConnectionOptions> SkipNegotiation = options =>
    {
        options.SkipNegotiation = true;
        options.Transports = HttpTransportType.WebSockets;
    };

    /// <summary>Builds an unstarted connection to <paramref name="hubUrl"/>.</summary>
    /// <param name="configure">
    /// Runs after the defaults, so it can add reconnect policies, logging, JSON options or
    /// <c>AddMessagePackProtocol()</c>: the connection speaks the last protocol registered, as a plain
    /// <see cref="HubConnectionBuilder"/> does.
    /// </param>
    /// <param name="connection">
    /// The HTTP connection's options, as <c>WithUrl(url, options =&gt; ...)</c> takes them: an
    /// <see cref="HttpConnectionOptions.AccessTokenProvider"/>, <see cref="HttpConnectionOptions.Headers"/>,
    /// <see cref="HttpConnectionOptions.Transports"/>, <see cref="SkipNegotiation"/>.
    /// </param>
    public static HubConnection Create(Uri hubUrl, Action<IHubConnectionBuilder>? configure = null, Action<HttpConnectionOptions>? connection = null)
    {
        var builder = new HubConnectionBuilder().WithUrl(hubUrl, options => connection?.Invoke(options));
        builder.ConfigureLogging(logging => logging.ClearProviders());

        configure?.Invoke(builder);

        // HubConnection takes the last IHubProtocol registered: wrap that one, registered after it.
        var chosen = builder.Services.LastOrDefault(service => service.ServiceType == typeof(IHubProtocol))
            ?? throw new InvalidOperationException("The connection has no hub protocol.");
        builder.Services.AddSingleton<IHubProtocol>(services => new AnyArityHubProtocol(Instantiate(services, chosen)));

        var hub = builder.Build();
        AnyArityConnections.AddOrUpdate(hub, Built);
        return hub;
    }

    public static Task<HubConnection> StartAsync(Uri hubUrl, Action<IHubConnectionBuilder>? configure = null, CancellationToken cancellationToken = default) =>
        StartAsync(hubUrl, connection: null, configure, cancellationToken);

    /// <summary>Builds (see <see cref="Create"/>) and starts a connection; disposes it if the start fails.</summary>
    public static async Task<HubConnection> StartAsync(
        Uri hubUrl,
        Action<HttpConnectionOptions>? connection,
        Action<IHubConnectionBuilder>? configure = null,
        CancellationToken cancellationToken = default)
    {
        var hub = Create(hubUrl, configure, connection);
        try
        {
            await hub.StartAsync(cancellationToken);
        }
        catch
        {
            await hub.DisposeAsync();
            throw;
        }

        return hub;
    }

    /// <summary>
    /// The streaming guide's first steps: connect, listen to <paramref name="eventNames"/> (any
    /// number of arguments each), start, and ask for the id to send as <c>socketIOClientId</c>.
    /// </summary>
    public static Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAndListenAsync(Uri hubUrl, params string[] eventNames) =>
        ConnectAndListenAsync(hubUrl, configure: null, eventNames);

    /// <inheritdoc cref="ConnectAndListenAsync(Uri, string[])"/>
    /// <param name="configure">As for <see cref="Create"/>, e.g. <c>b =&gt; b.AddMessagePackProtocol()</c>.</param>
    public static async Task<(HubConnection Connection, EventRecorder Events, string Id)> ConnectAndListenAsync(
        Uri hubUrl, Action<IHubConnectionBuilder>? configure, params string[] eventNames)
    {
        var events = new EventRecorder();
        var connection = Create(hubUrl, configure);
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
    /// The HTTP statuses a failed <c>StartAsync</c> reports, each once: the negotiate request's, or those of the
    /// transports it tried after negotiating (the client then throws an <see cref="AggregateException"/> of
    /// <c>TransportFailedException</c>s). A WebSocket upgrade's refusal carries its status only in its message.
    /// </summary>
    public static IReadOnlySet<HttpStatusCode> RefusalStatuses(Exception failure)
    {
        var statuses = new HashSet<HttpStatusCode>();
        var pending = new Stack<Exception>([failure]);
        while (pending.TryPop(out var exception))
        {
            if (exception is HttpRequestException { StatusCode: { } status })
            {
                statuses.Add(status);
            }

            if (exception is AggregateException aggregate)
            {
                aggregate.InnerExceptions.ToList().ForEach(pending.Push);
            }
            else if (exception.InnerException is { } inner)
            {
                pending.Push(inner);
            }
        }

        return statuses;
    }

    /// <summary>
    /// Registers a handler for <paramref name="methodName"/> that receives every argument as a
    /// <see cref="JsonElement"/>, however many the server sends. <see cref="HubConnection.On(string, Type[], Func{object?[], object, Task}, object)"/>
    /// alone cannot do this: both hub protocols bind arguments against the parameter types of the method's first
    /// handler and drop (log) any invocation whose argument count differs. Only works on connections built by
    /// <see cref="Create"/>, whose protocol sizes the binding to each message. On MessagePack each argument is
    /// read as the plain value a .NET client gets for <c>object</c> (string, integer, double, bool, null,
    /// <c>object[]</c>, <c>Dictionary&lt;object, object&gt;</c>, <c>byte[]</c>) and then written as JSON. Register it
    /// before any typed handler for the same method (the first handler's parameter types are the ones used), and do
    /// not mix the two kinds on one method.
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
            static (args, state) => ((Func<JsonElement[], Task>)state)(Array.ConvertAll(args, ToElement)),
            handler);
    }

    // Marker parameter type: "bind as many arguments as the message carries".
    private static class AnyArity;

    private static JsonElement ToElement(object? arg) => arg switch
    {
        JsonElement element => element,
        null => NullElement,
        _ => JsonSerializer.SerializeToElement(arg, arg.GetType()),
    };

    private static IHubProtocol Instantiate(IServiceProvider services, ServiceDescriptor descriptor) =>
        (IHubProtocol)(descriptor.ImplementationInstance
            ?? descriptor.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, descriptor.ImplementationType!));

    /// <summary>
    /// The connection's own hub protocol, except that a method whose handler declares the <see cref="AnyArity"/>
    /// marker is bound to as many arguments as each message actually carries: it counts them before handing the
    /// message, with a binder sized to that count, to the real protocol.
    /// </summary>
    private sealed class AnyArityHubProtocol : IHubProtocol
    {
        private const byte RecordSeparator = 0x1e;
        private const int InvocationMessageType = 1;

        private readonly IHubProtocol _inner;
        private readonly bool _messagePack;

        public AnyArityHubProtocol(IHubProtocol inner)
        {
            _inner = inner;
            _messagePack = inner.Name switch
            {
                "json" => false,
                "messagepack" => true,
                _ => throw new NotSupportedException($"{nameof(OnAnyArity)} knows the json and messagepack hub protocols, not '{inner.Name}'."),
            };
        }

        public string Name => _inner.Name;

        public int Version => _inner.Version;

        public TransferFormat TransferFormat => _inner.TransferFormat;

        public bool IsVersionSupported(int version) => _inner.IsVersionSupported(version);

        public void WriteMessage(HubMessage message, IBufferWriter<byte> output) => _inner.WriteMessage(message, output);

        public ReadOnlyMemory<byte> GetMessageBytes(HubMessage message) => _inner.GetMessageBytes(message);

        public bool TryParseMessage(ref ReadOnlySequence<byte> input, IInvocationBinder binder, [NotNullWhen(true)] out HubMessage? message)
        {
            if ((_messagePack ? CountMessagePackArguments(input) : CountJsonArguments(input)) is { } count)
            {
                // MessagePack reads each argument as the type asked for: object is what a .NET client gets untyped.
                binder = new SizedBinder(binder, count, _messagePack ? typeof(object) : typeof(JsonElement));
            }

            return _inner.TryParseMessage(ref input, binder, out message);
        }

        // Counts the top-level "arguments" array of the next JSON hub message; null when absent or unreadable, in
        // which case the inner protocol sees the message unchanged and reports any error itself.
        private static int? CountJsonArguments(ReadOnlySequence<byte> input)
        {
            if (input.PositionOf(RecordSeparator) is not { } end)
            {
                return null;
            }

            try
            {
                var reader = new Utf8JsonReader(input.Slice(0, end));
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

        // Counts the arguments of the next MessagePack hub message when it is an invocation: a length prefix (7 bits
        // a byte, low first), then [type, headers, invocationId, target, arguments, streamIds].
        private static int? CountMessagePackArguments(ReadOnlySequence<byte> input)
        {
            var prefix = new SequenceReader<byte>(input);
            long length = 0;
            var shift = 0;
            byte next;
            do
            {
                if (shift > 28 || !prefix.TryRead(out next))
                {
                    return null;
                }

                length |= (long)(next & 0x7f) << shift;
                shift += 7;
            }
            while ((next & 0x80) != 0);

            if (prefix.Remaining < length)
            {
                return null;
            }

            try
            {
                var reader = new MessagePackReader(input.Slice(prefix.Position, length));
                if (reader.ReadArrayHeader() < 5 || reader.ReadInt32() != InvocationMessageType)
                {
                    return null;
                }

                reader.Skip(); // headers
                reader.Skip(); // invocation id
                reader.Skip(); // target
                return reader.ReadArrayHeader();
            }
            catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException)
            {
                return null;
            }
        }
    }

    private sealed class SizedBinder(IInvocationBinder inner, int argumentCount, Type argumentType) : IInvocationBinder
    {
        public IReadOnlyList<Type> GetParameterTypes(string methodName)
        {
            var types = inner.GetParameterTypes(methodName);
            return types is [var only] && only == typeof(AnyArity)
                ? Enumerable.Repeat(argumentType, argumentCount).ToArray()
                : types;
        }

        public Type GetReturnType(string invocationId) => inner.GetReturnType(invocationId);

        public Type GetStreamItemType(string streamId) => inner.GetStreamItemType(streamId);

        public string? GetTarget(ReadOnlySpan<byte> utf8Bytes) => inner.GetTarget(utf8Bytes);
    }
}
