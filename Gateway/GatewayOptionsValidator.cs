using Microsoft.Extensions.Options;

namespace TromAi.Gateway;

/// <summary>Checks the <c>Gateway</c> section at start-up; each failure names the configuration key to fix.</summary>
internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var failures = new List<string>();
        const string upstream = GatewayOptions.SectionName + ":Upstream:";
        const string relay = GatewayOptions.SectionName + ":Relay:";
        const string proxy = GatewayOptions.SectionName + ":Proxy:";

        RequireHttpUrl(failures, upstream + "BaseUrl", options.Upstream.BaseUrl);
        for (var i = 0; i < options.Upstream.Destinations.Count; i++)
        {
            RequireHttpUrl(failures, $"{upstream}Destinations:{i}", options.Upstream.Destinations[i]);
        }

        RequirePositive(failures, upstream + "ConnectTimeout", options.Upstream.ConnectTimeout);
        RequirePositive(failures, upstream + "ReconnectInitialDelay", options.Upstream.ReconnectInitialDelay);
        if (options.Upstream.ReconnectMaxDelay < options.Upstream.ReconnectInitialDelay)
        {
            failures.Add($"{upstream}ReconnectMaxDelay must not be shorter than {upstream}ReconnectInitialDelay.");
        }

        if (options.Upstream.WarmSockets is < 0 or > Upstream.WarmUpstreamSockets.MaxSize)
        {
            failures.Add($"{upstream}WarmSockets must be from 0 (off) to {Upstream.WarmUpstreamSockets.MaxSize} (got {options.Upstream.WarmSockets}).");
        }

        const string redis = GatewayOptions.SectionName + ":Redis:";
        if (options.Redis.Enabled)
        {
            try
            {
                StackExchange.Redis.ConfigurationOptions.Parse(options.Redis.Configuration!);
            }
            catch (ArgumentException e)
            {
                failures.Add($"{redis}Configuration is not a valid StackExchange.Redis configuration: {e.Message}");
            }
        }

        // Checked with or without Redis: the session directory keeps liveness in memory the same way.
        if (options.Redis.SessionTtl < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{redis}SessionTtl must be at least 00:00:01 (got {options.Redis.SessionTtl}).");
        }

        RequirePositive(failures, redis + "OperationTimeout", options.Redis.OperationTimeout);
        if (options.Redis.OperationTimeout.TotalMilliseconds > int.MaxValue)
        {
            failures.Add($"{redis}OperationTimeout is too long (got {options.Redis.OperationTimeout}).");
        }

        if (string.IsNullOrWhiteSpace(options.Redis.KeyPrefix) || options.Redis.KeyPrefix.Any(char.IsWhiteSpace))
        {
            failures.Add($"{redis}KeyPrefix must be a non-empty name without spaces (got '{options.Redis.KeyPrefix}').");
        }

        if (options.Relay.MaxBacklog < 1)
        {
            failures.Add($"{relay}MaxBacklog must be at least 1 (got {options.Relay.MaxBacklog}).");
        }

        RequirePositive(failures, relay + "SlowClientTimeout", options.Relay.SlowClientTimeout);
        RequirePositive(failures, relay + "IdleTimeout", options.Relay.IdleTimeout);

        if (options.Proxy.MaxPredictionBodyBytes < 1)
        {
            failures.Add($"{proxy}MaxPredictionBodyBytes must be at least 1 (got {options.Proxy.MaxPredictionBodyBytes}).");
        }

        if (options.Proxy.MaxBufferedBodyBytes < options.Proxy.MaxPredictionBodyBytes)
        {
            failures.Add($"{proxy}MaxBufferedBodyBytes ({options.Proxy.MaxBufferedBodyBytes}) must be at least {proxy}MaxPredictionBodyBytes ({options.Proxy.MaxPredictionBodyBytes}), or the largest allowed body could never be read.");
        }

        RequirePositive(failures, proxy + "ActivityTimeout", options.Proxy.ActivityTimeout);
        for (var i = 0; i < options.ForwardedHeaders.TrustedProxies.Count; i++)
        {
            if (!Security.ForwardedHeadersTrust.TryParse(options.ForwardedHeaders.TrustedProxies[i], out _))
            {
                failures.Add($"{GatewayOptions.SectionName}:ForwardedHeaders:TrustedProxies:{i} must be an IP address (10.1.2.3) or a CIDR network (10.0.0.0/8), not '{options.ForwardedHeaders.TrustedProxies[i]}'.");
            }
        }

        if (options.Drain.Timeout < TimeSpan.Zero)
        {
            failures.Add($"{GatewayOptions.SectionName}:Drain:Timeout must not be negative (got {options.Drain.Timeout}).");
        }

        if (options.Playground.Enabled == true && !Playground.PlaygroundFiles.Built)
        {
            failures.Add($"{GatewayOptions.SectionName}:Playground:Enabled is true, but this build of the gateway has no playground (it was built with -p:BuildPlayground=false). Build it with npm on the PATH, or leave the setting unset.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void RequireHttpUrl(List<string> failures, string key, Uri? url)
    {
        if (url is null || !url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            failures.Add($"{key} must be an absolute http:// or https:// URL (got '{url}').");
        }
    }

    private static void RequirePositive(List<string> failures, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            failures.Add($"{key} must be a positive time span such as 00:00:10 (got {value}).");
        }
    }
}
