namespace TromAi.Gateway.Upstream;

internal static class UpstreamUrls
{
    /// <summary>Resolves <paramref name="relative"/> under the replica's URL, keeping a sub-path (<c>http://host/tromai</c>) that plain Uri resolution would drop.</summary>
    public static Uri Combine(Uri replica, string relative)
    {
        var root = replica.AbsoluteUri.EndsWith('/') ? replica : new Uri(replica.AbsoluteUri + "/");
        return new Uri(root, relative);
    }
}
