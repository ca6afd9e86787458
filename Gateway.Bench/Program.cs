using TromAi.Gateway.Bench;

// Ctrl+C ends the run through cancellation, so the upstream and gateway processes it started are stopped too.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

return await Benchmark.RunAsync(args, Console.Out, Console.Error, cancellation.Token);
