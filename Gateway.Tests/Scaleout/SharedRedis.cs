using Microsoft.Extensions.DependencyInjection;
using TromAi.Gateway.Bridge;
using TromAi.Gateway.Tests.Fixtures;

namespace TromAi.Gateway.Tests.Scaleout;

/// <summary>What the scale-out tests share: settings for instances on one Redis, and looking at the shared state from one of them.</summary>
internal static class SharedRedis
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Settings of an instance on <paramref name="redis"/>, with a short instance TTL so that a dead instance is noticed quickly.</summary>
    public static Dictionary<string, string?> Settings(RedisServer redis, IDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Redis:Configuration"] = redis.Configuration,
            ["Gateway:Redis:SessionTtl"] = "00:00:03",
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }

    public static ISessionDirectory Directory(this GatewayHost gateway) => gateway.Services.GetRequiredService<ISessionDirectory>();

    /// <summary>What <paramref name="gateway"/> knows of the connection that hands out <paramref name="socketIOClientId"/>.</summary>
    public static ValueTask<SessionLookup> FindAsync(this GatewayHost gateway, string socketIOClientId) =>
        gateway.Directory().FindAsync(socketIOClientId, CancellationToken.None);

    /// <summary>Asks <paramref name="gateway"/> until it answers <paramref name="status"/>, and returns that answer.</summary>
    public static async Task<SessionLookup> WaitForLookupAsync(this GatewayHost gateway, string socketIOClientId, SessionLookupStatus status)
    {
        var lookup = default(SessionLookup);
        await WaitUntilAsync(async () => (lookup = await gateway.FindAsync(socketIOClientId)).Status == status,
            () => $"a lookup of {socketIOClientId} to answer {status} (last answer: {lookup.Status})");
        return lookup;
    }

    /// <summary>Waits for state kept in another process (Redis), asking again at a short interval until it holds.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, Func<string> what)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while (!await condition())
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"Timed out after {Timeout} waiting for {what()}.");
            }

            await Task.Delay(50);
        }
    }
}
