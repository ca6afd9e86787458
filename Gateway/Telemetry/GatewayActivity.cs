using System.Diagnostics;

namespace TromAi.Gateway.Telemetry;

/// <summary>
/// The gateway's spans, on the <c>TromAi.Gateway</c> activity source. A prediction's span covers
/// the hub <c>Predict</c> call or the REST prediction request; the upstream HTTP call it makes runs
/// under it, so HttpClient's own span is its child. Nobody listening (no OTLP endpoint): no span,
/// and no cost beyond a null check.
/// </summary>
internal static class GatewayActivity
{
    public const string SourceName = "TromAi.Gateway";

    /// <summary>The span name: fixed, so that a trace backend can list every prediction; the chatflow is a tag.</summary>
    public const string PredictionName = "tromai.gateway.prediction";

    public const string ChatflowIdTag = "tromai.chatflow.id";

    private static readonly ActivitySource Source = new(SourceName, typeof(GatewayActivity).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// Starts a prediction's span as the current activity; disposing it ends it. The chatflow id is
    /// given at creation, where a sampler can see it.
    /// </summary>
    public static Activity? StartPrediction(string? chatflowId) =>
        Source.HasListeners()
            ? Source.StartActivity(ActivityKind.Internal, tags: [new(ChatflowIdTag, chatflowId)], name: PredictionName)
            : null;
}
