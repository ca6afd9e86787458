using System.Diagnostics.Metrics;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// What one instrument has measured since it was published, per tag set: a running sum (counters,
/// up-down counters), the last value (observable instruments, gauges) or bucket counts (histograms).
/// Recording is lock-free once a tag set has been seen: a hash and a scan of a small array, then
/// one interlocked add. Only a tag set's first measurement takes the lock and allocates.
/// </summary>
internal sealed class InstrumentAggregate
{
    /// <summary>Past this many tag sets, further ones are counted together, as OpenTelemetry does, instead of growing memory.</summary>
    internal const int MaxSeries = 2000;

    private static readonly KeyValuePair<string, object?>[] OverflowTags = [new("otel.metric.overflow", true)];

    // Bounds for histograms that advise none. Seconds: ASP.NET Core's own advice for durations.
    private static readonly double[] DefaultSecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    private static readonly double[] DefaultBuckets = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly Lock _gate = new();
    private readonly Aggregation _aggregation;
    private readonly KeyValuePair<string, object?>[] _staticTags;
    private volatile Series[] _series = [];

    public InstrumentAggregate(Instrument instrument)
    {
        Instrument = instrument;
        var definition = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : null;
        (Kind, _aggregation) = definition switch
        {
            _ when definition == typeof(Counter<>) => (MetricKind.Counter, Aggregation.Sum),
            _ when definition == typeof(UpDownCounter<>) => (MetricKind.Gauge, Aggregation.Sum),
            _ when definition == typeof(Histogram<>) => (MetricKind.Histogram, Aggregation.Histogram),
            _ when definition == typeof(ObservableCounter<>) => (MetricKind.Counter, Aggregation.LastValue), // it reports totals
            _ => (MetricKind.Gauge, Aggregation.LastValue), // ObservableUpDownCounter, ObservableGauge, Gauge
        };

        Bounds = _aggregation == Aggregation.Histogram ? AdvisedBounds(instrument) ?? (instrument.Unit == "s" ? DefaultSecondsBuckets : DefaultBuckets) : [];
        _staticTags = [.. instrument.Tags ?? [], .. instrument.Meter.Tags ?? []];
        Name = PrometheusTextFormat.MetricName(instrument.Name, instrument.Unit, Kind);
    }

    public Instrument Instrument { get; }

    public MetricKind Kind { get; }

    /// <summary>The Prometheus metric family name (sanitised, unit suffix, <c>_total</c> for counters).</summary>
    public string Name { get; }

    /// <summary>Histogram bucket upper bounds, ascending; empty for other kinds.</summary>
    public double[] Bounds { get; }

    public IReadOnlyList<Series> CurrentSeries => _series;

    /// <summary>Observable instruments report on collection; their tag sets are renewed each time (<see cref="BeginObservation"/>).</summary>
    public bool IsObservable => Instrument.IsObservable;

    public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var series = Find(tags) ?? Add(tags);
        switch (_aggregation)
        {
            case Aggregation.Sum:
                series.Add(value);
                break;
            case Aggregation.LastValue:
                series.Set(value);
                break;
            default:
                series.Observe(value, BucketIndex(value));
                break;
        }
    }

    /// <summary>
    /// Forgets the tag sets of an observable instrument before its callbacks run again, so a tag
    /// set its callback no longer reports (a closed pool, a gone replica) stops being exposed.
    /// </summary>
    public void BeginObservation()
    {
        lock (_gate)
        {
            _series = [];
        }
    }

    private int BucketIndex(double value)
    {
        // Bucket i counts values <= Bounds[i] (Prometheus' "le"); the last one is +Inf.
        var index = Array.BinarySearch(Bounds, value);
        return index >= 0 ? index : ~index;
    }

    private Series? Find(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var hash = Series.Hash(tags);
        foreach (var series in _series)
        {
            if (series.TagHash == hash && series.Matches(tags))
            {
                return series;
            }
        }

        return null;
    }

    private Series Add(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_gate)
        {
            if (Find(tags) is { } raced)
            {
                return raced;
            }

            var current = _series;
            if (current.Length >= MaxSeries)
            {
                tags = OverflowTags;
                if (Find(tags) is { } overflow)
                {
                    return overflow;
                }
            }

            var added = new Series(tags, _staticTags, _aggregation == Aggregation.Histogram ? Bounds.Length + 1 : 0);
            _series = [.. current, added]; // copy on write: recorders scan without a lock
            return added;
        }
    }

    private static double[]? AdvisedBounds(Instrument instrument)
    {
        IEnumerable<double>? advised = instrument switch
        {
            Instrument<double> d => d.Advice?.HistogramBucketBoundaries,
            Instrument<float> f => f.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Instrument<long> l => l.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Instrument<int> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Instrument<short> s => s.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            Instrument<byte> b => b.Advice?.HistogramBucketBoundaries?.Select(v => (double)v),
            Instrument<decimal> m => m.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
            _ => null,
        };

        var bounds = advised?.Where(double.IsFinite).Distinct().Order().ToArray();
        return bounds is { Length: > 0 } ? bounds : null;
    }

    /// <summary>One tag set's value. Its label text is built once, when the tag set first appears.</summary>
    internal sealed class Series
    {
        private readonly KeyValuePair<string, object?>[] _tags;
        private readonly long[] _buckets;
        private long _valueBits;
        private long _sumBits;

        public Series(ReadOnlySpan<KeyValuePair<string, object?>> tags, KeyValuePair<string, object?>[] staticTags, int buckets)
        {
            _tags = tags.ToArray();
            _buckets = new long[buckets];
            TagHash = Hash(tags);
            Labels = PrometheusTextFormat.Labels(_tags, staticTags);
        }

        public int TagHash { get; }

        /// <summary><c>name="value",...</c> without braces; empty for no tags.</summary>
        public string Labels { get; }

        public double Value => BitConverter.Int64BitsToDouble(Volatile.Read(ref _valueBits));

        public double Sum => BitConverter.Int64BitsToDouble(Volatile.Read(ref _sumBits));

        /// <summary>Per-bucket counts, not cumulative; the last is the +Inf bucket.</summary>
        public long[] BucketCounts()
        {
            var counts = new long[_buckets.Length];
            for (var i = 0; i < counts.Length; i++)
            {
                counts[i] = Volatile.Read(ref _buckets[i]);
            }

            return counts;
        }

        public void Add(double value) => AddTo(ref _valueBits, value);

        public void Set(double value) => Volatile.Write(ref _valueBits, BitConverter.DoubleToInt64Bits(value));

        public void Observe(double value, int bucket)
        {
            Interlocked.Increment(ref _buckets[bucket]);
            AddTo(ref _sumBits, value);
        }

        /// <summary>Order-independent, so the same tags in another order find the same series.</summary>
        public static int Hash(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var hash = tags.Length;
            foreach (var tag in tags)
            {
                hash += HashCode.Combine(tag.Key, tag.Value);
            }

            return hash;
        }

        public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length != _tags.Length)
            {
                return false;
            }

            foreach (var tag in tags)
            {
                var found = false;
                foreach (var own in _tags)
                {
                    if (string.Equals(own.Key, tag.Key, StringComparison.Ordinal))
                    {
                        found = Equals(own.Value, tag.Value);
                        break;
                    }
                }

                if (!found)
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary>Interlocked add of a double, compared by bits so that a NaN cannot spin forever.</summary>
        private static void AddTo(ref long bits, double value)
        {
            var seen = Volatile.Read(ref bits);
            while (true)
            {
                var updated = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + value);
                var actual = Interlocked.CompareExchange(ref bits, updated, seen);
                if (actual == seen)
                {
                    return;
                }

                seen = actual;
            }
        }
    }

    private enum Aggregation
    {
        Sum,
        LastValue,
        Histogram,
    }
}
