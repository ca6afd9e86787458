using System.Reflection;
using Microsoft.Extensions.Logging;

namespace TromAi.Gateway.Tests;

/// <summary>An operator filters and alerts on a log event's id and name: each must mean one thing.</summary>
public sealed class LogEventTests
{
    private static readonly LoggerMessageAttribute[] GatewayEvents =
    [
        .. typeof(GatewayOptions).Assembly.GetTypes()
            .SelectMany(type => type.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(method => method.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>(),
    ];

    [Fact]
    public void Every_event_of_the_gateway_has_its_own_id_and_a_name()
    {
        Assert.True(GatewayEvents.Length > 20, $"only {GatewayEvents.Length} log events found: is the attribute still kept in metadata?");

        var sharedIds = GatewayEvents.GroupBy(e => e.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Message))}");
        Assert.Empty(sharedIds);
        Assert.Empty(GatewayEvents.Where(e => string.IsNullOrEmpty(e.EventName)).Select(e => e.Message));
        Assert.Empty(GatewayEvents.GroupBy(e => e.EventName).Where(g => g.Count() > 1).Select(g => g.Key));
    }
}
