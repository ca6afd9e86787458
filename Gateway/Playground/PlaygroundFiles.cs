using System.Collections.Frozen;
using Microsoft.Extensions.FileProviders;

namespace TromAi.Gateway.Playground;

/// <summary>
/// The page's files, embedded in the assembly by the build (Gateway.csproj): <c>wwwroot/*</c> and the
/// browser build of <c>@microsoft/signalr</c> from npm. Served from here rather than from disk, so a
/// published gateway is one assembly and no static-file middleware can shadow TROM.AI's paths.
/// </summary>
internal static class PlaygroundFiles
{
    private const string Namespace = "TromAi.Gateway.Playground";

    /// <summary>What the page cannot work without; absent when the build ran with <c>-p:BuildPlayground=false</c>.</summary>
    private const string SignalRClient = "signalr.min.js";

    private static readonly Lazy<FrozenDictionary<string, IFileInfo>> Files = new(Load);

    /// <summary>Whether this build of the gateway carries the page.</summary>
    public static bool Built => Files.Value.ContainsKey(SignalRClient);

    /// <summary>The file called <paramref name="name"/> (no folders: the page is flat), or null.</summary>
    public static IFileInfo? Find(string name) => Files.Value.GetValueOrDefault(name);

    private static FrozenDictionary<string, IFileInfo> Load()
    {
        var provider = new EmbeddedFileProvider(typeof(PlaygroundFiles).Assembly, Namespace);
        return provider.GetDirectoryContents("").ToFrozenDictionary(file => file.Name, StringComparer.Ordinal);
    }
}
