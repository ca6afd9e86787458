using System.Net;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// A prediction body the gateway refuses, with the status and the message the client gets. Messages
/// are the gateway's own fixed text: a client's input is never echoed, in the answer or in the log.
/// </summary>
internal sealed class PredictionBodyException(HttpStatusCode status, string reason, string message, Exception? inner = null) : Exception(message, inner)
{
    public HttpStatusCode Status { get; } = status;

    /// <summary>The <c>reason</c> of <c>tromai.gateway.rejects</c>.</summary>
    public string Reason { get; } = reason;

    public static PredictionBodyException OverBudget(long limit) => new(HttpStatusCode.ServiceUnavailable, Telemetry.GatewayMetrics.RejectReason.BodyBudget,
        $"The gateway holds as many prediction bodies as it may right now (Gateway:Proxy:MaxBufferedBodyBytes = {limit}); retry shortly.");

    public static PredictionBodyException TooLarge(long limit) => new(HttpStatusCode.RequestEntityTooLarge, Telemetry.GatewayMetrics.RejectReason.BodyTooLarge,
        $"The prediction body is larger than the gateway's limit of {limit} bytes (Gateway:Proxy:MaxPredictionBodyBytes).");

    public static PredictionBodyException InvalidJson(Exception inner) => new(HttpStatusCode.BadRequest, Telemetry.GatewayMetrics.RejectReason.InvalidBody,
        $"The prediction body is not valid JSON: {inner.Message}", inner);

    public static PredictionBodyException InvalidMultipart(string what) => new(HttpStatusCode.BadRequest, Telemetry.GatewayMetrics.RejectReason.InvalidBody,
        $"The prediction body is not valid multipart/form-data: {what}");

    /// <summary>
    /// What failed when a forward failed while reading the client's body: a refusal of the rewrite's
    /// own, or Kestrel's (past the limit, a client too slow). Null when something else failed.
    /// </summary>
    public static Exception? BodyFailure(Exception? failure)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            if (e is PredictionBodyException or Microsoft.AspNetCore.Http.BadHttpRequestException)
            {
                return e;
            }
        }

        return null;
    }

    /// <summary>The refusal for a <see cref="BodyFailure"/>, with the prediction body <paramref name="limit"/> to name in a 413.</summary>
    public static PredictionBodyException For(Exception bodyFailure, long limit) => bodyFailure switch
    {
        PredictionBodyException refusal => refusal,
        Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => TooLarge(limit),
        Microsoft.AspNetCore.Http.BadHttpRequestException bad => new((HttpStatusCode)bad.StatusCode, Telemetry.GatewayMetrics.RejectReason.InvalidBody, "The prediction body could not be read.", bad),
        _ => new(HttpStatusCode.BadRequest, Telemetry.GatewayMetrics.RejectReason.InvalidBody, "The prediction body could not be read.", bodyFailure),
    };
}
