using System.Text.RegularExpressions;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>Publishes the gateway once, as the Dockerfile's build stage does, from the files the build context would hold.</summary>
public sealed class PublishedGateway : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tromai-gateway-publish-" + Guid.NewGuid().ToString("N"));

    public string Output => Path.Combine(_root, "app");

    /// <summary>The build context: paths relative to the repository root.</summary>
    public IReadOnlyList<string> Context { get; private set; } = [];

    public async Task InitializeAsync()
    {
        try
        {
            var source = Path.Combine(_root, "src");
            Context = DockerContext.Copy(Deploy.RepoRoot, source);
            foreach (var command in Dockerfile.Load().BuildCommands)
            {
                // The build stage's `dotnet restore` and `dotnet publish`, with /app in a temporary folder.
                var script = Regex.Replace(command, @"(?<=\s)/app(?=\s|$)", Output);
                var (exit, output) = await Deploy.RunAsync("bash", ["-c", script], source, timeout: TimeSpan.FromMinutes(5));
                Assert.True(exit == 0, $"`{script}` failed ({exit}):\n{output}");
            }
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }
}
