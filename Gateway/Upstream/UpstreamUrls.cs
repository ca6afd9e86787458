namespace TromAi.Gateway.Upstream;

internal static class UpstreamUrls
{
    /// <summary>Resolves <paramref name="relative"/> under the replica's URL, keeping a sub-path (<c>http://host/tromai</c>) that plain Uri resolution would drop.</summary>
    public static Uri Combine(Uri replica, string relative)
    {
        var root = replica.AbsoluteUri.EndsWith('/') ? replica : new Uri(replica.AbsoluteUri + "/");
        return new Uri(root, relative);
    }

    /// <summary>
    /// True when <paramref name="id"/> (a chatflow or chat id a client gave) can stand as one path
    /// segment of an upstream URL and stay one: not empty, not a dot segment (<c>.</c>, <c>..</c>,
    /// which URL resolution would climb), no <c>/</c> or <c>\</c>, no control character, no <c>%</c>
    /// (an escape that a server would decode into one of those). Anything else is escaped on the way.
    /// </summary>
    public static bool IsPathSegment(string? id)
    {
        if (string.IsNullOrEmpty(id) || id is "." or ".." || id.Length > 1024)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is '/' or '\\' or '%' || char.IsControl(c))
            {
                return false;
            }
        }

        return true;
    }
}
