using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests.Proxy;

/// <summary>Records what a running gateway logs (message and exception text), from <see cref="Attach"/> until disposed.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _entries = new();
    private volatile bool _stopped;

    public IReadOnlyCollection<string> Entries => _entries;

    /// <summary>Adds a capture to the gateway's logger factory; loggers already created log to it too.</summary>
    public static LogCapture Attach(IServiceProvider services)
    {
        var capture = new LogCapture();
        services.GetRequiredService<ILoggerFactory>().AddProvider(capture);
        return capture;
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    // A logger factory cannot drop a provider: a disposed capture just stops recording.
    public void Dispose() => _stopped = true;

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => !owner._stopped;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!owner._stopped)
            {
                owner._entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
            }
        }
    }
}
