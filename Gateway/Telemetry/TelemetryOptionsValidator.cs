using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Telemetry;

/// <summary>Checks the <c>Gateway:Telemetry</c> section at start-up; each failure names the key to fix.</summary>
internal sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, TelemetryOptions options)
    {
        var failures = new List<string>();
        const string section = TelemetryOptions.SectionName + ":";
        if (string.IsNullOrEmpty(options.MetricsPath) || options.MetricsPath[0] != '/')
        {
            failures.Add($"{section}MetricsPath must be a path starting with '/' (got '{options.MetricsPath}').");
        }

        if (options.OtlpEndpoint is { } endpoint
            && (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add($"{section}OtlpEndpoint must be an absolute http:// or https:// URL (got '{endpoint}').");
        }
        else if (options.OtlpEndpoint?.AbsolutePath.TrimEnd('/') is { } path
            && (path.EndsWith("/v1/metrics", StringComparison.Ordinal) || path.EndsWith("/v1/traces", StringComparison.Ordinal)))
        {
            failures.Add($"{section}OtlpEndpoint is the collector's address, without a signal's path: over HttpProtobuf the gateway adds /v1/metrics and /v1/traces itself (got '{options.OtlpEndpoint}').");
        }

        if (!Enum.IsDefined(options.OtlpProtocol))
        {
            failures.Add($"{section}OtlpProtocol must be Grpc or HttpProtobuf (got {options.OtlpProtocol}).");
        }

        if (options.OtlpExportInterval <= TimeSpan.Zero || options.OtlpExportInterval.TotalMilliseconds > int.MaxValue)
        {
            failures.Add($"{section}OtlpExportInterval must be a positive time span such as 00:01:00 (got {options.OtlpExportInterval}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
