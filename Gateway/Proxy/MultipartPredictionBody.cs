using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A multipart prediction body, read section by section with ASP.NET Core's <see cref="MultipartReader"/>
/// and forwarded rebuilt with the same boundary. Sections are buffered only until the first
/// <c>socketIOClientId</c> field, since that id decides where the request goes; every section after it
/// (the files, usually) streams from the client to TROM.AI as it arrives. The field the rewrite changes
/// is the only difference: other sections keep their headers and bytes.
/// </summary>
internal sealed class MultipartPredictionBody
{
    private const string FieldName = "socketIOClientId";
    private const string StreamingField = "streaming";

    /// <summary>
    /// Longest boundary accepted, as ASP.NET Core's own form reader does (FormOptions); RFC 2046
    /// allows 70. Past it <see cref="MultipartReader"/> would need a larger buffer than its own.
    /// </summary>
    public const int MaxBoundaryLength = 128;

    /// <summary>Longer ids are nobody's, and are not decoded.</summary>
    private const int MaxIdBytes = 256;

    private static readonly byte[] NewLine = "\r\n"u8.ToArray();

    private readonly MultipartReader _reader;
    private readonly BufferedBody _buffer;
    private readonly byte[] _delimiter;
    private readonly List<(long Start, long End)> _streamingSections = [];
    private long _idSectionStart = -1;
    private long _idStart;
    private long _idEnd;
    private long _idSectionEnd;

    private MultipartPredictionBody(string boundary, Stream source, BufferedBody buffer)
    {
        _reader = new MultipartReader(boundary, source) { BodyLengthLimit = null };
        _buffer = buffer;
        _delimiter = Encoding.ASCII.GetBytes($"--{boundary}\r\n");
        Boundary = boundary;
    }

    public string Boundary { get; }

    /// <summary>The id the client sent: the first <c>socketIOClientId</c> field, when it is short.</summary>
    public string? ClientId { get; private set; }

    /// <summary>Whether the whole body is buffered (no id came before its end).</summary>
    public bool Ended { get; private set; }

    /// <summary>
    /// Reads sections into <paramref name="buffer"/>, as they will be forwarded, up to and including the
    /// first <c>socketIOClientId</c> field, or to the end.
    /// </summary>
    /// <exception cref="PredictionBodyException">400, 413, or 503 past the budget.</exception>
    public static async Task<MultipartPredictionBody> ReadToClientIdAsync(string boundary, Stream source, BufferedBody buffer, long limit, CancellationToken cancellationToken)
    {
        var body = new MultipartPredictionBody(boundary, source, buffer);
        var sections = 0;
        while (await NextSectionAsync(body._reader, cancellationToken) is { } section)
        {
            sections++;
            var sectionStart = buffer.Length;
            body.WriteHeaders(section);
            var contentStart = buffer.Length;
            await Guard(buffer.AppendAsync(section.Body, expected: null, limit, cancellationToken));
            var contentEnd = buffer.Length;
            buffer.Write(NewLine);
            if (IsField(section, StreamingField))
            {
                body._streamingSections.Add((sectionStart, buffer.Length));
            }
            else if (IsField(section, FieldName))
            {
                (body._idSectionStart, body._idStart, body._idEnd, body._idSectionEnd) = (sectionStart, contentStart, contentEnd, buffer.Length);
                body.ClientId = contentEnd - contentStart <= MaxIdBytes ? Encoding.UTF8.GetString(buffer.Bytes.Slice(contentStart, contentEnd - contentStart)) : null;
                return body;
            }
        }

        if (sections == 0)
        {
            throw PredictionBodyException.InvalidMultipart("it has no sections.");
        }

        buffer.Write(Encoding.ASCII.GetBytes($"--{boundary}--\r\n"));
        body.Ended = true;
        return body;
    }

    /// <summary>The body as the client sent it (section by section).</summary>
    public (List<ForwardedBody.Part> Head, IAsyncEnumerable<ForwardedBody.Part>? Tail) Unchanged() =>
        ([ForwardedBody.Part.Of(_buffer.Bytes)], Ended ? null : RestAsync(dropStreaming: false));

    /// <summary>The body with the id field's value replaced by <paramref name="socketId"/>.</summary>
    public (List<ForwardedBody.Part> Head, IAsyncEnumerable<ForwardedBody.Part>? Tail) Rewritten(string socketId)
    {
        var buffered = _buffer.Bytes;
        return (
            [
                ForwardedBody.Part.Of(buffered.Slice(0, _idStart)),
                ForwardedBody.Part.Of(Encoding.UTF8.GetBytes(socketId)),
                ForwardedBody.Part.Of(buffered.Slice(_idEnd)),
            ],
            RestAsync(dropStreaming: false));
    }

    /// <summary>
    /// The body for an SSE-era TROM.AI: the id field becomes <c>streaming=true</c>, and every other
    /// <c>streaming</c> field is left out (multer would make the two an array, which is not "true").
    /// </summary>
    public (List<ForwardedBody.Part> Head, IAsyncEnumerable<ForwardedBody.Part>? Tail) Streamed()
    {
        var buffered = _buffer.Bytes;
        var head = new List<ForwardedBody.Part>();
        long position = 0;
        foreach (var (start, end) in _streamingSections)
        {
            head.Add(ForwardedBody.Part.Of(buffered.Slice(position, start - position)));
            position = end;
        }

        head.Add(ForwardedBody.Part.Of(buffered.Slice(position, _idSectionStart - position)));
        head.Add(ForwardedBody.Part.Of(Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Disposition: form-data; name=\"{StreamingField}\"\r\n\r\ntrue\r\n")));
        head.Add(ForwardedBody.Part.Of(buffered.Slice(_idSectionEnd)));
        return (head, RestAsync(dropStreaming: true));
    }

    /// <summary>The sections after the id, each streamed from the client as the reader reaches it, then the closing delimiter.</summary>
    private async IAsyncEnumerable<ForwardedBody.Part> RestAsync(bool dropStreaming, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await NextSectionAsync(_reader, cancellationToken) is { } section)
        {
            if (dropStreaming && IsField(section, StreamingField))
            {
                continue; // the reader skips its content on the way to the next section
            }

            yield return ForwardedBody.Part.Of(HeaderBytes(section));
            yield return ForwardedBody.Part.Of(new GuardedStream(section.Body));
            yield return ForwardedBody.Part.Of(NewLine);
        }

        yield return ForwardedBody.Part.Of(Encoding.ASCII.GetBytes($"--{Boundary}--\r\n"));
    }

    private void WriteHeaders(MultipartSection section) => _buffer.Write(HeaderBytes(section));

    private byte[] HeaderBytes(MultipartSection section)
    {
        var text = new StringBuilder();
        foreach (var (name, values) in section.Headers ?? [])
        {
            foreach (var value in values)
            {
                text.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }

        text.Append("\r\n");
        return [.. _delimiter, .. Encoding.UTF8.GetBytes(text.ToString())];
    }

    private static bool IsField(MultipartSection section, string name) =>
        ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
        && disposition.IsFormDisposition() && disposition.Name.Equals(name, StringComparison.Ordinal);

    private static Task<MultipartSection?> NextSectionAsync(MultipartReader reader, CancellationToken cancellationToken) =>
        Guard(reader.ReadNextSectionAsync(cancellationToken));

    /// <summary>
    /// The reader's own errors, as a 400 with a fixed message: theirs can quote the client's header
    /// lines, which neither the answer nor the log should carry.
    /// </summary>
    private static async Task<T> Guard<T>(Task<T> reading)
    {
        try
        {
            return await reading;
        }
        // Not chained as inner exceptions: a failure during the forward is logged by YARP with its causes.
        catch (InvalidDataException)
        {
            throw PredictionBodyException.InvalidMultipart("a section's headers are malformed or past the limits (16 headers, 16 KB).");
        }
        catch (IOException e) when (e is not Microsoft.AspNetCore.Http.BadHttpRequestException && !IsClientGone(e))
        {
            throw PredictionBodyException.InvalidMultipart("it ends before its closing boundary.");
        }
    }

    private static async Task Guard(Task reading) => await Guard(WithResult(reading));

    private static async Task<bool> WithResult(Task reading)
    {
        await reading;
        return true;
    }

    private static bool IsClientGone(IOException e) => e is Microsoft.AspNetCore.Connections.ConnectionResetException;

    /// <summary>A section's content stream, with the reader's errors turned into a 400 like the rest.</summary>
    private sealed class GuardedStream(Stream section) : ReadOnlyStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            await Guard(section.ReadAsync(buffer, cancellationToken).AsTask());

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read the forwarded body asynchronously.");
    }
}
