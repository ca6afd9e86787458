using System.Net;
using System.Text.Json;

namespace TromAi.Gateway.Bridge;

/// <summary>How a REST prediction ended, as the instance that forwarded it saw it: TROM.AI's answer (JSON), or why its stream ends without one.</summary>
internal readonly record struct RestAnswer(ReadOnlyMemory<byte> Answer, string? Error)
{
    public static RestAnswer Failed(string error) => new(default, error);

    /// <summary>From the response the REST caller got: its status and its (decoded) body.</summary>
    public static RestAnswer Of(HttpStatusCode status, ReadOnlyMemory<byte> body)
    {
        string? error;
        try
        {
            // Read only here, for an error's message: the answer is kept as the bytes it came in, not cloned.
            using var document = JsonDocument.Parse(body);
            error = PredictionStreams.ErrorOf(status, document.RootElement);
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's error page): kept as a string, as Predict passes it.
            var text = JsonSerializer.SerializeToElement(System.Text.Encoding.UTF8.GetString(body.Span));
            body = JsonSerializer.SerializeToUtf8Bytes(text);
            error = PredictionStreams.ErrorOf(status, text);
        }

        return error is not null ? Failed(error) : new RestAnswer(body, null);
    }
}
