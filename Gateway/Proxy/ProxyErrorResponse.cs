using System.Net;
using Microsoft.Extensions.Options;
using TromAi.Gateway.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace TromAi.Gateway.Proxy;

/// <summary>
/// Gives a failed forward a body. YARP answers 502/504 with nothing in it; clients of TROM.AI expect
/// its error shape, <c>{statusCode, success:false, message}</c>, so they can show what went wrong.
/// </summary>
internal sealed partial class ProxyErrorResponse(RequestDelegate next, GatewayMetrics metrics, IOptions<GatewayOptions> options, ILogger<ProxyErrorResponse> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        await next(context);

        var error = context.GetForwarderErrorFeature();
        if (error is null || context.Response.HasStarted)
        {
            return;
        }

        // A prediction body that streamed on to TROM.AI and then broke off, was malformed, or grew
        // past the limit: the client's fault, said as when it is found before forwarding.
        if (PredictionBodyException.BodyFailure(error.Exception) is { } cause)
        {
            var refusal = PredictionBodyException.For(cause, options.Value.Proxy.MaxPredictionBodyBytes);
            metrics.Rejected(refusal.Reason);
            await ErrorResponse.WriteAsync(context, refusal.Status, refusal.Message);
            return;
        }

        var status = context.Response.StatusCode is >= 400 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
        var message = error.Error switch
        {
            ForwarderError.RequestTimedOut => "TROM.AI did not answer in time (Gateway:Proxy:ActivityTimeout).",
            ForwarderError.Request or ForwarderError.NoAvailableDestinations => "TROM.AI is unreachable.",
            _ => $"The gateway could not forward the request to TROM.AI ({error.Error}).",
        };

        // The cause names internal addresses: it goes to the log, not to the client.
        Log.ForwardFailed(logger, error.Error, error.Exception?.GetBaseException().Message);
        await ErrorResponse.WriteAsync(context, (HttpStatusCode)status, message);
    }

    private static partial class Log
    {
        [LoggerMessage(1121, LogLevel.Warning, "Forwarding to TROM.AI failed ({Error}): {Reason}", EventName = "ForwardFailed")]
        public static partial void ForwardFailed(ILogger logger, ForwarderError error, string? reason);
    }
}
