using System.Collections.Concurrent;
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
/// Stands in for an OpenTelemetry collector on a loopback port: takes OTLP metric exports over
/// HTTP (<c>POST /v1/metrics</c>) or gRPC (cleartext HTTP/2) and keeps their protobuf bodies.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    public const string GrpcExportPath = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app, Uri baseUrl, ConcurrentQueue<Export> exports)
    {
        _app = app;
        BaseUrl = baseUrl;
        Exports = exports;
    }

    public Uri BaseUrl { get; }

    public ConcurrentQueue<Export> Exports { get; }

    public static async Task<OtlpReceiver> StartAsync(bool grpc)
    {
        var exports = new ConcurrentQueue<Export>();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0,
            listen => listen.Protocols = grpc ? HttpProtocols.Http2 : HttpProtocols.Http1AndHttp2));
        var app = builder.Build();
        app.MapPost("/v1/metrics", async context =>
        {
            exports.Enqueue(new Export(context.Request.Path, context.Request.ContentType, await ReadAsync(context)));
            context.Response.ContentType = "application/x-protobuf"; // an empty ExportMetricsServiceResponse
        });
        app.MapPost(GrpcExportPath, async context =>
        {
            exports.Enqueue(new Export(context.Request.Path, context.Request.ContentType, await ReadAsync(context)));
            context.Response.ContentType = "application/grpc";
            await context.Response.Body.WriteAsync(new byte[5]); // one uncompressed, empty message
            context.Response.AppendTrailer("grpc-status", "0");
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new OtlpReceiver(app, new Uri(address.TrimEnd('/') + "/"), exports);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static async Task<byte[]> ReadAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        return body.ToArray();
    }

    public sealed record Export(string Path, string? ContentType, byte[] Body);
}
