using TromAi.Gateway.Bench.Hosting;
using TromAi.Gateway.Bench.Reporting;
using TromAi.Gateway.Bench.Scenarios;

namespace TromAi.Gateway.Bench;

/// <summary>
/// The bench's entry point, public so that the test suite's smoke tests run exactly what the command line runs.
/// Each scenario gets its own upstream and gateway processes (unless given by URL), so no scenario measures
/// the leftovers of another.
/// </summary>
public static class Benchmark
{
    /// <param name="output">Receives the markdown rows and JSON lines, nothing else.</param>
    /// <param name="log">Receives progress.</param>
    /// <returns>0; 2 for a usage error; 1 when a scenario failed to run; 130 when cancelled.</returns>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, TextWriter log, CancellationToken cancellationToken = default)
    {
        if (args is ["keep"])
        {
            return await KeepMeasurement.RunAsync(output); // in process: no upstream or gateway to start
        }

        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args);
        }
        catch (FormatException e)
        {
            await log.WriteLineAsync(e.Message);
            await log.WriteLineAsync(BenchOptions.Usage);
            return 2;
        }

        var scenarios = options.Scenario == "all" ? BenchOptions.Scenarios : [options.Scenario];
        if (!options.JsonOnly)
        {
            await output.WriteLineAsync(ScenarioResult.Header);
            await output.WriteLineAsync(ScenarioResult.Separator);
        }

        // With several scenarios the rows come first, as one table, and the JSON lines after it.
        var jsonLines = new List<string>();
        try
        {
            foreach (var scenario in scenarios)
            {
                var scenarioOptions = options.Scenario == "all" ? options.For(scenario) : options;
                ScenarioResult result;
                try
                {
                    result = await RunScenarioAsync(scenarioOptions, log, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    await log.WriteLineAsync($"{scenario}: cancelled");
                    return 130;
                }
                catch (Exception e)
                {
                    await log.WriteLineAsync($"{scenario} failed: {e}");
                    return 1;
                }

                if (!options.JsonOnly)
                {
                    await output.WriteLineAsync(result.ToMarkdownRow());
                }

                jsonLines.Add(result.ToJsonLine(scenarioOptions));
                if (scenarios.Count == 1 || options.JsonOnly)
                {
                    await WriteAsync(output, jsonLines);
                }

                await output.FlushAsync(cancellationToken);
            }
        }
        finally
        {
            await WriteAsync(output, jsonLines); // what an interrupted "all" run did measure
        }

        return 0;
    }

    private static async Task WriteAsync(TextWriter output, List<string> lines)
    {
        foreach (var line in lines)
        {
            await output.WriteLineAsync(line);
        }

        lines.Clear();
    }

    private static async Task<ScenarioResult> RunScenarioAsync(BenchOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        await using var environment = await BenchEnvironment.StartAsync(options, log, cancellationToken);
        return options.Scenario switch
        {
            "latency" => await LatencyScenario.RunAsync(environment, options, cancellationToken),
            "throughput" => await ThroughputScenario.RunAsync(environment, options, cancellationToken),
            "memory" => await MemoryScenario.RunAsync(environment, options, cancellationToken),
            "connect" => await ConnectScenario.RunAsync(environment, options, cancellationToken),
            "rest" => await RestScenario.RunAsync(environment, options, cancellationToken),
            "reader" => await ReaderScenario.RunAsync(environment, options, cancellationToken),
            "capacity" => await CapacityScenario.RunAsync(environment, options, cancellationToken),
            var other => throw new NotSupportedException(other),
        };
    }
}
