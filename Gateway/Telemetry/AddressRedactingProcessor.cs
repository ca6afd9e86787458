using System.Diagnostics;
using OpenTelemetry;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// Removes <see cref="AddressAttributes"/> from every span before it is exported: HttpClient's spans
/// (to TROM.AI, through YARP or the hub's own client) carry its URL, host and port. Registered ahead
/// of the exporter, whose batch reads the span after this has run.
/// </summary>
internal sealed class AddressRedactingProcessor : BaseProcessor<Activity>
{
    public override void OnEnd(Activity data)
    {
        foreach (var key in AddressAttributes.Keys)
        {
            if (data.GetTagItem(key) is not null)
            {
                data.SetTag(key, null); // null removes the tag
            }
        }
    }
}
