using System.Diagnostics.Metrics;
using System.Text;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Listens to the named meters and keeps what they measure, per tag set, for
/// <see cref="PrometheusMetricsEndpoint"/> to expose. Observable instruments (the runtime's GC and
/// thread pool, for instance) are read when scraped, not before.
/// </summary>
/// <remarks>
/// A meter created through an <see cref="IMeterFactory"/> counts only when it is this container's
/// (<see cref="Meter.Scope"/>): several gateways in one process, as in the tests, each expose
/// their own requests. Static meters (the runtime's, a plain <see cref="HttpClient"/>'s) belong
/// to the process and are exposed by every collector.
/// </remarks>
internal sealed partial class MetricsCollector : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly HashSet<string> _meterNames;
    private readonly object? _scope;
    private readonly ILogger _logger;
    private readonly Lock _instrumentsGate = new();
    private readonly Lock _scrapeGate = new();
    private readonly List<InstrumentAggregate> _instruments = [];

    public MetricsCollector(IEnumerable<string> meterNames, object? scope, ILogger<MetricsCollector> logger)
    {
        _meterNames = new HashSet<string>(meterNames, StringComparer.Ordinal);
        _scope = scope;
        _logger = logger;
        _listener.InstrumentPublished = OnInstrumentPublished;
        _listener.MeasurementsCompleted = OnMeasurementsCompleted;
        _listener.SetMeasurementEventCallback<byte>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<short>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<long>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<float>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<decimal>(static (_, value, tags, state) => ((InstrumentAggregate)state!).Record((double)value, tags));
        _listener.Start(); // publishes the instruments that exist already
    }

    /// <summary>Every family with at least one series, in Prometheus text format, sorted by name.</summary>
    public string Scrape()
    {
        // One scrape at a time: observable instruments' series are renewed by each.
        lock (_scrapeGate)
        {
            InstrumentAggregate[] instruments;
            lock (_instrumentsGate)
            {
                instruments = [.. _instruments];
            }

            foreach (var instrument in instruments)
            {
                if (instrument.IsObservable)
                {
                    instrument.BeginObservation();
                }
            }

            try
            {
                _listener.RecordObservableInstruments();
            }
            catch (Exception e)
            {
                // The other callbacks have run: one broken instrument must not take /metrics down.
                Log.ObservableCallbackFailed(_logger, e);
            }

            var output = new StringBuilder(32 * 1024);
            string? previous = null;
            foreach (var instrument in instruments.OrderBy(i => i.Name, StringComparer.Ordinal)) // stable: of two same-named instruments, the older wins
            {
                var series = instrument.CurrentSeries;
                if (series.Count == 0 || instrument.Name == previous)
                {
                    continue; // a family appears once: the first instrument of a name wins
                }

                PrometheusTextFormat.AppendFamily(output, instrument, series);
                previous = instrument.Name;
            }

            return output.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        var meter = instrument.Meter;
        if (!_meterNames.Contains(meter.Name) || (meter.Scope is not null && !ReferenceEquals(meter.Scope, _scope)))
        {
            return;
        }

        var aggregate = new InstrumentAggregate(instrument);
        lock (_instrumentsGate)
        {
            _instruments.Add(aggregate);
        }

        listener.EnableMeasurementEvents(instrument, aggregate);
    }

    /// <summary>The instrument's meter was disposed (its host stopped): what it measured goes with it.</summary>
    private void OnMeasurementsCompleted(Instrument instrument, object? state)
    {
        lock (_instrumentsGate)
        {
            _instruments.Remove((InstrumentAggregate)state!);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "An observable instrument's callback failed while collecting metrics; its values are missing from this scrape.")]
        public static partial void ObservableCallbackFailed(ILogger logger, Exception exception);
    }
}
