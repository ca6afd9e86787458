using System.Runtime.InteropServices;
using TromAi.Gateway.Bench;

// Ctrl+C and SIGTERM end the run through cancellation, so the upstream and gateway processes it started are
// stopped too instead of being left behind.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal =>
{
    signal.Cancel = true;
    cancellation.Cancel();
});

return await Benchmark.RunAsync(args, Console.Out, Console.Error, cancellation.Token);
