using System.Net;

namespace TromAi.Gateway.Proxy;

/// <summary>Errors in TROM.AI's own shape, so a client handles the gateway's and the upstream's alike.</summary>
internal static class ErrorResponse
{
    public static Task WriteAsync(HttpContext context, HttpStatusCode status, string message)
    {
        context.Response.StatusCode = (int)status;
        return context.Response.WriteAsJsonAsync(new ErrorBody((int)status, false, message));
    }

    private sealed record ErrorBody(int StatusCode, bool Success, string Message);
}
