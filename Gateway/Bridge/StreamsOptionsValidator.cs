using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Bridge;

/// <summary>Checks the <c>Gateway:Streams</c> section at start-up; each failure names the key to fix.</summary>
internal sealed class StreamsOptionsValidator : IValidateOptions<GatewayOptions>
{
    // A stream must hold at least one event of a typical size, or nothing could ever be resumed.
    private const long MinBytesPerStream = 1024;

    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var failures = new List<string>();
        var streams = options.Streams;
        const string section = StreamsOptions.SectionName + ":";
        RequirePositive(failures, section + "Retention", streams.Retention);
        RequirePositive(failures, section + "DetachedTimeout", streams.DetachedTimeout);
        if (streams.MaxEventsPerStream < 1)
        {
            failures.Add($"{section}MaxEventsPerStream must be at least 1 (got {streams.MaxEventsPerStream}).");
        }

        if (streams.MaxBytesPerStream < MinBytesPerStream)
        {
            failures.Add($"{section}MaxBytesPerStream must be at least {MinBytesPerStream} (got {streams.MaxBytesPerStream}).");
        }

        if (streams.MaxTotalBytes < streams.MaxBytesPerStream)
        {
            failures.Add($"{section}MaxTotalBytes ({streams.MaxTotalBytes}) must be at least {section}MaxBytesPerStream ({streams.MaxBytesPerStream}), or one stream could never be kept whole.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void RequirePositive(List<string> failures, string key, TimeSpan value)
    {
        // Timers take at most int.MaxValue milliseconds (about 24 days).
        if (value <= TimeSpan.Zero || value.TotalMilliseconds > int.MaxValue)
        {
            failures.Add($"{key} must be a positive time span such as 00:05:00, at most 24 days (got {value}).");
        }
    }
}
