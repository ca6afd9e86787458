using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests.Telemetry;

/// <summary>
/// Stands in for an OpenTelemetry collector on a loopback port: takes OTLP metric and trace
/// exports over HTTP (<c>POST /v1/metrics</c>, <c>/v1/traces</c>) or gRPC (cleartext HTTP/2) and
/// keeps each request's protobuf message, with waits that wake on each new export.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    public const string GrpcMetricsPath = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    public const string GrpcTracesPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private ImmutableList<Export> _exports = [];
    private TaskCompletionSource _changed = NewSignal();

    private OtlpReceiver(WebApplication app) => _app = app;

    public Uri BaseUrl { get; private set; } = null!;

    public IReadOnlyList<Export> Exports
    {
        get
        {
            lock (_gate)
            {
                return _exports;
            }
        }
    }

    public static async Task<OtlpReceiver> StartAsync(bool grpc)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0,
            listen => listen.Protocols = grpc ? HttpProtocols.Http2 : HttpProtocols.Http1AndHttp2));
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        foreach (var (path, signal) in new[] { ("/v1/metrics", Signal.Metrics), ("/v1/traces", Signal.Traces) })
        {
            app.MapPost(path, async context =>
            {
                receiver.Add(new Export(signal, path, context.Request.ContentType, await ReadAsync(context)));
                context.Response.ContentType = "application/x-protobuf"; // an empty Export*ServiceResponse
            });
        }

        foreach (var (path, signal) in new[] { (GrpcMetricsPath, Signal.Metrics), (GrpcTracesPath, Signal.Traces) })
        {
            app.MapPost(path, async context =>
            {
                // gRPC frames the message: a compression flag, its length (big-endian), then the message.
                var frame = await ReadAsync(context);
                var length = BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(1, 4));
                receiver.Add(new Export(signal, path, context.Request.ContentType, frame.AsSpan(5, length).ToArray()));
                context.Response.ContentType = "application/grpc";
                await context.Response.Body.WriteAsync(new byte[5]); // one uncompressed, empty message
                context.Response.AppendTrailer("grpc-status", "0");
            });
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        receiver.BaseUrl = new Uri(address.TrimEnd('/') + "/");
        return receiver;
    }

    /// <summary>Completes once an export matching <paramref name="condition"/> has arrived; throws <see cref="TimeoutException"/> otherwise.</summary>
    public async Task<Export> WaitForAsync(Func<Export, bool> condition, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            ImmutableList<Export> exports;
            Task changed;
            lock (_gate)
            {
                exports = _exports;
                changed = _changed.Task;
            }

            if (exports.FirstOrDefault(condition) is { } match)
            {
                return match;
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"No matching OTLP export within {timeout}; received: {string.Join(", ", Exports.Select(e => e.Path))}.");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private void Add(Export export)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _exports = _exports.Add(export);
            changed = _changed;
            _changed = NewSignal();
        }

        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static async Task<byte[]> ReadAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        return body.ToArray();
    }

    public enum Signal
    {
        Metrics,
        Traces,
    }

    /// <param name="Body">The protobuf message: an <c>ExportMetricsServiceRequest</c> or an <c>ExportTraceServiceRequest</c>.</param>
    public sealed record Export(Signal Signal, string Path, string? ContentType, byte[] Body)
    {
        /// <summary>Protobuf keeps strings as UTF-8 bytes: a name, a key or a value is in the body as it is.</summary>
        public bool Contains(string text) => Body.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(text)) >= 0;
    }
}
