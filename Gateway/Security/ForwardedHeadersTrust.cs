using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;

namespace TromAi.Gateway.Security;

/// <summary>
/// Whom the gateway believes about a client's address. ASP.NET Core's own switch
/// (<c>ASPNETCORE_FORWARDEDHEADERS_ENABLED=true</c>) reads <c>X-Forwarded-For/Proto</c> from anyone,
/// so any client could pick the address its per-IP limits count against; here only the proxies in
/// <c>Gateway:ForwardedHeaders:TrustedProxies</c> (loopback when none are listed, ASP.NET Core's
/// default) may say who the client is.
/// </summary>
internal static class ForwardedHeadersTrust
{
    public static IServiceCollection AddForwardedHeadersTrust(this IServiceCollection services)
    {
        // Runs after the switch's own setup (registered with the host's defaults), which empties both lists.
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<GatewayOptions>>((forwarded, gateway) =>
        {
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            var trusted = gateway.Value.ForwardedHeaders.TrustedProxies;
            foreach (var entry in trusted.Count > 0 ? trusted : ["127.0.0.0/8", "::1"])
            {
                if (TryParse(entry, out var network))
                {
                    forwarded.KnownIPNetworks.Add(network);
                    if (network.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                    {
                        // A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
                        forwarded.KnownIPNetworks.Add(new IPNetwork(network.BaseAddress.MapToIPv6(), network.PrefixLength + 96));
                    }
                }
            }

            // Walk back through every trusted proxy (a load balancer, then the ingress): the first
            // address that is not one of them is the client's.
            forwarded.ForwardLimit = null;
        });
        return services;
    }

    /// <summary>An address (<c>10.1.2.3</c>, one host) or a network in CIDR notation (<c>10.0.0.0/8</c>).</summary>
    public static bool TryParse(string? entry, out IPNetwork network)
    {
        network = default;
        if (string.IsNullOrWhiteSpace(entry))
        {
            return false;
        }

        if (IPAddress.TryParse(entry, out var address) && !entry.Contains('/'))
        {
            network = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        return IPNetwork.TryParse(entry.Trim(), out network);
    }
}
