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

        if (options.OtlpExportInterval <= TimeSpan.Zero || options.OtlpExportInterval.TotalMilliseconds > int.MaxValue)
        {
            failures.Add($"{section}OtlpExportInterval must be a positive time span such as 00:01:00 (got {options.OtlpExportInterval}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
