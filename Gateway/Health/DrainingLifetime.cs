using System.Runtime.InteropServices;
using TromAi.Gateway.Bridge;

namespace TromAi.Gateway.Health;

/// <summary>
/// The host's lifetime, with a drain in front of the stop: on SIGTERM (or Ctrl+C) the gateway drains
/// first (<see cref="GatewayDrain"/>), and only then asks the host to stop. The default console
/// lifetime would stop at once, and SignalR closes every connection the moment the host stops. A
/// second signal during the drain stops at once.
/// </summary>
internal sealed partial class DrainingLifetime(
    GatewayDrain drain, IHostApplicationLifetime application, IHostEnvironment environment, ILoggerFactory loggers) : IHostLifetime, IDisposable
{
    // The console lifetime's category and lines, so operators and scripts see what they are used to.
    private readonly ILogger _logger = loggers.CreateLogger("Microsoft.Hosting.Lifetime");
    private readonly List<PosixSignalRegistration> _signals = [];
    private int _signalled;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        application.ApplicationStarted.Register(() => Log.Started(_logger, environment.EnvironmentName, environment.ContentRootPath));
        foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT })
        {
            _signals.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }

        return Task.CompletedTask;
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the host stops when the drain is done, not now
        if (Interlocked.Increment(ref _signalled) > 1)
        {
            application.StopApplication();
            return;
        }

        Log.Signalled(_logger, context.Signal);
        _ = DrainThenStopAsync();
    }

    private async Task DrainThenStopAsync()
    {
        try
        {
            await drain.DrainAsync(application.ApplicationStopping);
        }
        finally
        {
            application.StopApplication();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1002, LogLevel.Information, "Application started. Press Ctrl+C to shut down (after a drain).\nHosting environment: {Environment}\nContent root path: {ContentRoot}", EventName = "Started")]
        public static partial void Started(ILogger logger, string environment, string contentRoot);

        [LoggerMessage(1001, LogLevel.Information, "{Signal} received: draining before shutdown.", EventName = "DrainSignalled")]
        public static partial void Signalled(ILogger logger, PosixSignal signal);
    }
}
