using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;

namespace TromAi.Gateway.Tests.Infrastructure;

/// <summary>A hub method invocation received by a client, with its arguments as JSON.</summary>
internal sealed record RecordedEvent(string Name, IReadOnlyList<JsonElement> Args)
{
    /// <summary>Compact JSON: <c>{"name":"...","args":[...]}</c>.</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("name", Name);
            writer.WriteStartArray("args");
            foreach (var arg in Args)
            {
                arg.WriteTo(writer);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    public override string ToString() => ToJson();
}

/// <summary>
/// Thread-safe record of the events a <see cref="HubConnection"/> receives, with waits that wake on each new
/// event rather than polling.
/// </summary>
internal sealed class EventRecorder
{
    private const int MaxEventsInTimeoutMessage = 50;
    private static readonly JsonElement NullElement = JsonDocument.Parse("null").RootElement;

    private readonly Lock _gate = new();
    private ImmutableList<RecordedEvent> _events = [];
    // Completed (and replaced) on every Record, waking all waiters to re-check their conditions.
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>Records an event; each argument is a <see cref="JsonElement"/>, or null, or any value to serialize.</summary>
    public void Record(string name, object?[] args) =>
        Append(new RecordedEvent(name, Array.ConvertAll(args, ToElement)));

    /// <summary>Everything recorded so far, in arrival order. Later events do not change the returned list.</summary>
    public IReadOnlyList<RecordedEvent> Snapshot()
    {
        lock (_gate)
        {
            return _events;
        }
    }

    /// <summary>
    /// Records every invocation of <paramref name="eventNames"/> on <paramref name="connection"/>, whatever its
    /// argument count. The connection must come from <see cref="HubClients"/>; see <see cref="HubClients.OnAnyArity"/>.
    /// </summary>
    public void Listen(HubConnection connection, params IEnumerable<string> eventNames)
    {
        foreach (var name in eventNames)
        {
            connection.OnAnyArity(name, args =>
            {
                Append(new RecordedEvent(name, args));
                return Task.CompletedTask;
            });
        }
    }

    /// <summary>
    /// Completes once <paramref name="condition"/> holds for the recorded events; it is evaluated now and after
    /// each new event. Throws <see cref="TimeoutException"/>, listing what was received, if it does not hold within
    /// <paramref name="timeout"/>.
    /// </summary>
    public async Task WaitForAsync(
        Func<IReadOnlyList<RecordedEvent>, bool> condition,
        TimeSpan timeout,
        CancellationToken cancellationToken = default)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);

        while (true)
        {
            ImmutableList<RecordedEvent> events;
            Task changed;
            lock (_gate)
            {
                events = _events;
                changed = _changed.Task;
            }

            if (condition(events))
            {
                return;
            }

            try
            {
                await changed.WaitAsync(timeoutSource.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                var final = Snapshot();
                if (condition(final))
                {
                    return;
                }

                throw new TimeoutException($"Condition not met within {timeout}. {Describe(final)}");
            }
        }
    }

    /// <summary>Waits for the first event named <paramref name="name"/> (and matching <paramref name="predicate"/>) and returns it.</summary>
    public async Task<RecordedEvent> WaitForEventAsync(
        string name,
        TimeSpan timeout,
        Func<RecordedEvent, bool>? predicate = null,
        CancellationToken cancellationToken = default)
    {
        bool Matches(RecordedEvent e) => e.Name == name && (predicate is null || predicate(e));

        RecordedEvent? match = null;
        await WaitForAsync(events => (match = events.FirstOrDefault(Matches)) is not null, timeout, cancellationToken);
        return match!;
    }

    private void Append(RecordedEvent recorded)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _events = _events.Add(recorded);
            changed = _changed;
            _changed = NewSignal();
        }

        // Waiters resume asynchronously (see NewSignal), so none runs inside the hub's dispatch loop.
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static JsonElement ToElement(object? arg) => arg switch
    {
        JsonElement element => element.Clone(),
        null => NullElement,
        _ => JsonSerializer.SerializeToElement(arg, arg.GetType()),
    };

    private static string Describe(IReadOnlyList<RecordedEvent> events)
    {
        if (events.Count == 0)
        {
            return "No events were received.";
        }

        var text = new StringBuilder($"Received {events.Count} event(s):");
        var skipped = Math.Max(0, events.Count - MaxEventsInTimeoutMessage);
        if (skipped > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"{Environment.NewLine}  ... {skipped} earlier event(s) omitted");
        }

        foreach (var recorded in events.Skip(skipped))
        {
            text.Append(Environment.NewLine).Append("  ").Append(recorded.ToJson());
        }

        return text.ToString();
    }
}
