using System.Text;
using System.Text.RegularExpressions;

namespace TromAi.Gateway.Tests.Deploy;

/// <summary>The build context <c>docker build .</c> sends: the repository less what .dockerignore leaves out.</summary>
internal static class DockerContext
{
    /// <summary>Copies the context to <paramref name="destination"/>; returns its files, relative, with '/'.</summary>
    public static List<string> Copy(string root, string destination)
    {
        var rules = File.ReadAllLines(Path.Combine(root, ".dockerignore"))
            .Select(line => line.Trim())
            .Where(line => line.Length > 0 && !line.StartsWith('#'))
            .Select(line => line.StartsWith('!') ? (Include: true, Pattern: Clean(line[1..])) : (Include: false, Pattern: Clean(line)))
            .Select(rule => (rule.Include, rule.Pattern, Regex: new Regex("^" + ToRegex(rule.Pattern) + "$")))
            .ToList();

        bool Excluded(string path)
        {
            var excluded = false;
            foreach (var (include, _, regex) in rules)
            {
                // A pattern that matches a directory covers everything below it.
                var prefixes = path.Split('/').Select((_, i) => string.Join('/', path.Split('/').Take(i + 1)));
                if (prefixes.Any(regex.IsMatch))
                {
                    excluded = !include;
                }
            }

            return excluded;
        }

        // An excluded directory is entered only when a ! rule could bring something inside it back.
        bool MayReinclude(string directory) =>
            rules.Any(r => r.Include && (r.Pattern.StartsWith(directory + "/", StringComparison.Ordinal) || r.Pattern.IndexOfAny(['*', '?', '[']) >= 0));

        var files = new List<string>();
        void Walk(string relative)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(Path.Combine(root, relative)))
            {
                var path = relative.Length == 0 ? Path.GetFileName(entry) : relative + "/" + Path.GetFileName(entry);
                if (path == ".git")
                {
                    continue;
                }

                if (Directory.Exists(entry))
                {
                    if (!Excluded(path) || MayReinclude(path))
                    {
                        Walk(path);
                    }
                }
                else if (!Excluded(path))
                {
                    var target = Path.Combine(destination, path);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    File.Copy(entry, target);
                    files.Add(path);
                }
            }
        }

        Walk("");
        return files;

        static string Clean(string pattern) => pattern.Trim().TrimStart('/').TrimEnd('/');
    }

    private static string ToRegex(string pattern)
    {
        var regex = new StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                var slash = i + 2 < pattern.Length && pattern[i + 2] == '/';
                regex.Append(slash ? "(.*/)?" : ".*");
                i += slash ? 2 : 1;
            }
            else
            {
                regex.Append(pattern[i] switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => Regex.Escape(pattern[i].ToString()),
                });
            }
        }

        return regex.ToString();
    }
}
