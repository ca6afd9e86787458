using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.RegularExpressions;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>
/// The Dockerfile's build runs here as it would in <c>docker build</c>: the same context
/// (.dockerignore), its restore and publish commands, then the published gateway with the image's
/// environment, checked by the image's own HEALTHCHECK command. A publish keeps both cores busy
/// for a while, so it runs alone, after the tests that run in parallel.
/// </summary>
[Collection(DockerImageBuild.Name)]
public sealed class DockerImageTests(PublishedGateway published) : IClassFixture<PublishedGateway>
{
    [Fact]
    public void The_publish_holds_the_gateway_and_nothing_of_the_tests()
    {
        var files = Directory.GetFiles(published.Output, "*", SearchOption.AllDirectories)
            .Select(file => Path.GetRelativePath(published.Output, file).Replace('\\', '/'))
            .ToList();

        Assert.Contains("TromAi.Gateway.dll", files);
        Assert.Contains("TromAi.Gateway.runtimeconfig.json", files);
        Assert.Contains("appsettings.json", files);
        Assert.DoesNotContain(files, file => Regex.IsMatch(file, @"(Tests|Bench|xunit|testhost|TestPlatform|Microsoft\.NET\.Test)", RegexOptions.IgnoreCase));
        Assert.DoesNotContain(files, file => file.Contains("node_modules/", StringComparison.Ordinal) || file.StartsWith("Playground/", StringComparison.Ordinal));
        Assert.DoesNotContain(published.Context, entry => entry.StartsWith("Gateway.Tests/", StringComparison.Ordinal) || entry.StartsWith(".git/", StringComparison.Ordinal));

        // The playground's npm step ran in the build (the reason the build stage installs Node.js).
        using var assembly = new PEReader(File.OpenRead(Path.Combine(published.Output, "TromAi.Gateway.dll")));
        var metadata = assembly.GetMetadataReader();
        var resources = metadata.ManifestResources.Select(handle => metadata.GetString(metadata.GetManifestResource(handle).Name)).ToList();
        Assert.Contains("TromAi.Gateway.Playground.signalr.min.js", resources);
    }

    [Fact]
    public async Task The_image_listens_on_every_interface_and_its_HEALTHCHECK_passes()
    {
        var dockerfile = Dockerfile.Load();
        var port = Deploy.FreePort();
        var env = new Dictionary<string, string>(dockerfile.Environment)
        {
            // The image's Urls, on a free port: what `docker run` gets, less the fixed 8080.
            ["Urls"] = dockerfile.Environment["Urls"].Replace($":{dockerfile.ListenPort}", $":{port}", StringComparison.Ordinal),
        };

        var gateway = new ProcessStartInfo("dotnet", [Path.Combine(published.Output, dockerfile.EntryPointDll)])
        {
            WorkingDirectory = published.Output,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in env)
        {
            gateway.Environment[key] = value;
        }

        // Liveness must not depend on TROM.AI, so none runs.
        gateway.Environment["Gateway__Upstream__BaseUrl"] = $"http://127.0.0.1:{Deploy.FreePort()}";
        gateway.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        var output = new StringBuilder();
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var process = Process.Start(gateway)!;
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data is not null && Regex.Match(e.Data, @"Now listening on: (\S+)") is { Success: true } match)
            {
                listening.TrySetResult(match.Groups[1].Value);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // appsettings.json's Urls is http://localhost:8080: the image's setting must outrank it,
            // or the gateway would answer only inside its own container.
            Assert.Contains(address, new[] { $"http://[::]:{port}", $"http://0.0.0.0:{port}" });

            var (healthy, healthOutput) = await dockerfile.RunHealthCheckAsync(env);
            Assert.True(healthy == 0, $"HEALTHCHECK exited {healthy} against the running gateway: {healthOutput}");
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        var (stopped, _) = await dockerfile.RunHealthCheckAsync(env);
        Assert.NotEqual(0, stopped);
    }
}
