using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>The repository's Dockerfile, read as far as these tests need: ENV, EXPOSE, USER, HEALTHCHECK, the build's RUN dotnet commands.</summary>
internal sealed class Dockerfile
{
    /// <summary>The uid of <c>app</c>, the non-root user the .NET images define (<c>APP_UID</c>).</summary>
    public const int AppUid = 1654;

    private Dockerfile(List<(string Instruction, string Arguments)> instructions)
    {
        var runtime = instructions.FindLastIndex(i => i.Instruction == "FROM");
        Assert.True(runtime > 0, "The Dockerfile should have a build stage and a runtime stage.");
        Assert.Contains("dotnet/aspnet", instructions[runtime].Arguments);
        Assert.Contains("dotnet/sdk", instructions[0].Arguments);

        var final = instructions.Skip(runtime).ToList();
        foreach (var (_, arguments) in final.Where(i => i.Instruction == "ENV"))
        {
            foreach (Match pair in Regex.Matches(arguments, @"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S*)"))
            {
                Environment[pair.Groups[1].Value] = pair.Groups[2].Value.Trim('"');
            }
        }

        Assert.True(Environment.ContainsKey("Urls"), "The image should set Urls (ASPNETCORE_URLS ranks below appsettings.json's Urls).");
        ListenPort = PortOf(Environment["Urls"]);
        Exposed = final.Where(i => i.Instruction == "EXPOSE").SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(p => p.Split('/')[0]).ToList();
        User = Assert.Single(final, i => i.Instruction == "USER").Arguments.Trim();

        var healthcheck = Assert.Single(final, i => i.Instruction == "HEALTHCHECK").Arguments;
        var command = healthcheck[(healthcheck.IndexOf("CMD ", StringComparison.Ordinal) + 4)..].Trim();
        HealthCheck = JsonSerializer.Deserialize<string[]>(command) ?? throw new InvalidOperationException("HEALTHCHECK CMD should be in exec form.");

        var entryPoint = JsonSerializer.Deserialize<string[]>(Assert.Single(final, i => i.Instruction == "ENTRYPOINT").Arguments)!;
        Assert.Equal("dotnet", entryPoint[0]);
        EntryPointDll = entryPoint[1];

        BuildCommands = instructions.Take(runtime).Where(i => i.Instruction == "RUN" && i.Arguments.StartsWith("dotnet ", StringComparison.Ordinal)).Select(i => i.Arguments).ToList();
        Assert.Contains(BuildCommands, c => c.StartsWith("dotnet publish", StringComparison.Ordinal));
    }

    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    public int ListenPort { get; }

    public List<string> Exposed { get; }

    public string User { get; }

    public string[] HealthCheck { get; }

    public string EntryPointDll { get; }

    public List<string> BuildCommands { get; }

    public static Dockerfile Load()
    {
        var instructions = new List<(string, string)>();
        var pending = new StringBuilder();
        foreach (var raw in File.ReadAllLines(Path.Combine(Deploy.RepoRoot, "Dockerfile")))
        {
            var line = raw.TrimEnd();
            if (line.TrimStart().StartsWith('#') || (pending.Length == 0 && line.Trim().Length == 0))
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                pending.Append(line[..^1]).Append(' ');
                continue;
            }

            pending.Append(line);
            var text = pending.ToString().Trim();
            pending.Clear();
            var space = text.IndexOf(' ');
            instructions.Add((text[..space].ToUpperInvariant(), text[(space + 1)..].Trim()));
        }

        return new Dockerfile(instructions);
    }

    /// <summary>The port of the first URL in a Urls value (http://+:8080;...).</summary>
    public static int PortOf(string urls)
    {
        var match = Regex.Match(urls.Split(';')[0], @":(\d+)/?$");
        Assert.True(match.Success, $"No port in Urls '{urls}'.");
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs the image's HEALTHCHECK command with the image's environment; its exit code (0: healthy).</summary>
    public Task<(int ExitCode, string Output)> RunHealthCheckAsync(IDictionary<string, string> environment) =>
        Deploy.RunAsync(HealthCheck[0], HealthCheck[1..], Path.GetTempPath(), TimeSpan.FromSeconds(10), environment);
}
