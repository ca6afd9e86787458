using System.Diagnostics;
using System.Text.Json;

namespace TromAi.Gateway.Tests.Fixtures;

/// <summary>
/// Runs <c>Gateway.Tests/browser/playground.spec.mjs</c>: Debian's Chromium, headless, driven by
/// playwright-core through the gateway's playground page. Screenshots go to
/// <c>TestResults/playground/</c> under the test's working directory.
/// </summary>
public static class PlaygroundBrowser
{
    private static readonly TimeSpan ScenarioTimeout = TimeSpan.FromSeconds(120);

    public static string Directory { get; } = FindBrowserDirectory();

    public static string ScreenshotDirectory { get; } = Path.Combine(Environment.CurrentDirectory, "TestResults", "playground");

    /// <summary>The Chromium to drive: <c>CHROMIUM</c>, or Debian's package (./test.sh installs it).</summary>
    public static string Chromium { get; } = Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    /// <summary>Runs one scenario of the spec (see its header: <c>rest</c>, <c>predict</c>, <c>keys</c>, ...) and returns the JSON line it prints.</summary>
    /// <param name="options">What the scenario needs besides the addresses (e.g. <c>TromAiKey</c>), as camelCase JSON.</param>
    public static async Task<JsonElement> RunAsync(string scenario, Uri gateway, Uri upstream, object? options = null)
    {
        if (!System.IO.Directory.Exists(Path.Combine(Directory, "node_modules", "playwright-core")))
        {
            throw new InvalidOperationException($"playwright-core is not installed: run ./test.sh (or `npm ci` in {Directory}).");
        }

        if (!File.Exists(Chromium))
        {
            throw new InvalidOperationException($"No Chromium at {Chromium}: run ./test.sh (it installs Debian's chromium), or set CHROMIUM.");
        }

        var start = new ProcessStartInfo("node",
            ["playground.spec.mjs", scenario, gateway.ToString(), upstream.ToString(), ScreenshotDirectory, JsonSerializer.Serialize(options ?? new { }, JsonSerializerOptions.Web)])
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["CHROMIUM"] = Chromium },
        };
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        try
        {
            await node.WaitForExitAsync().WaitAsync(ScenarioTimeout);
        }
        catch (TimeoutException)
        {
            node.Kill(entireProcessTree: true);
            throw new TimeoutException($"The browser scenario '{scenario}' ran longer than {ScenarioTimeout}: {await stderr}");
        }

        if (node.ExitCode != 0)
        {
            throw new Xunit.Sdk.XunitException(
                $"The browser scenario '{scenario}' failed (screenshots in {ScreenshotDirectory}):\n{await stderr}");
        }

        using var result = JsonDocument.Parse(await stdout);
        return result.RootElement.Clone();
    }

    private static string FindBrowserDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "Gateway.Tests", "browser");
            if (File.Exists(Path.Combine(candidate, "playground.spec.mjs")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("Gateway.Tests/browser/playground.spec.mjs not found above " + AppContext.BaseDirectory);
    }
}
