using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace TromAi.Gateway.Playground;

/// <summary>
/// The chat page at <c>/playground/</c>: the streaming guide in a browser, over the gateway's own hub
/// and REST route. Endpoints, not static-file middleware: they outrank YARP's catch-all for exactly
/// these paths and nothing else, so every other path still reaches TROM.AI.
/// </summary>
internal static partial class PlaygroundEndpoints
{
    public const string Path = "/playground";

    /// <summary>Maps the page when <c>Gateway:Playground:Enabled</c> (unset: in Development) says so; otherwise <c>/playground</c> stays TROM.AI's.</summary>
    public static WebApplication MapPlayground(this WebApplication app)
    {
        var enabled = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.Playground.Enabled;
        if (!(enabled ?? app.Environment.IsDevelopment()))
        {
            return app;
        }

        if (!PlaygroundFiles.Built)
        {
            // Only reachable when unset: an explicit true without the page fails validation at start-up.
            Log.NotBuilt(app.Logger);
            return app;
        }

        var contentTypes = new FileExtensionContentTypeProvider();

        // Matches /playground too: the catch-all parameter is optional.
        app.MapMethods(Path + "/{**file}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, string? file) =>
        {
            if (string.IsNullOrEmpty(file) && !context.Request.Path.Value!.EndsWith('/'))
            {
                // Without the slash the page's relative URLs (playground.js, ../hubs/prediction) would resolve one level too high.
                // The query stays: ?chatflow=<id> chooses the chatflow.
                return Results.Redirect(context.Request.PathBase + Path + "/" + context.Request.QueryString);
            }

            var found = PlaygroundFiles.Find(string.IsNullOrEmpty(file) ? "index.html" : file);
            if (found is null || !contentTypes.TryGetContentType(found.Name, out var contentType))
            {
                return Results.NotFound();
            }

            // Revalidated on every load, so a new build's page is never mixed with an old cached script.
            context.Response.Headers.CacheControl = "no-cache";
            context.Response.Headers.XContentTypeOptions = "nosniff";
            var tag = new EntityTagHeaderValue($"\"{found.LastModified.UtcTicks:x}-{found.Length:x}\"");
            return Results.Stream(found.CreateReadStream(), contentType, lastModified: found.LastModified, entityTag: tag);
        })
        // With gateway authentication on, a browser cannot put a key on a page load; the files hold no
        // data, and every request the page makes (hub, REST) carries the gateway key the user enters there.
        .AllowAnonymous();
        return app;
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Warning, "The playground is not served: this build of the gateway was made without it (-p:BuildPlayground=false).", EventName = "PlaygroundNotBuilt")]
        public static partial void NotBuilt(ILogger logger);
    }
}
