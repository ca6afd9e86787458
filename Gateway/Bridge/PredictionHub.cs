using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.SignalR;
using TromAi.Gateway.Upstream;

namespace TromAi.Gateway.Bridge;

/// <summary>
/// The hub at <c>/hubs/prediction</c>. Every upstream event reaches the caller under its own name;
/// by the time a client's <c>start()</c> has completed, its upstream session is already connected.
/// </summary>
internal sealed class PredictionHub(PredictionStreams predictions) : Hub
{
    public const string Path = "/hubs/prediction";

    private BridgedConnection Bridged => Context.Features.GetRequiredFeature<BridgedConnection>();

    /// <summary>
    /// The id to send as <c>socketIOClientId</c> in a prediction request to this gateway: this
    /// connection's own, unguessable, and not its SignalR connection id (<see cref="SocketIOClientIds"/>).
    /// </summary>
    public string GetSocketIOClientId() => Bridged.SocketIOClientId;

    /// <summary>
    /// Asks a question and streams the answer: first <c>{event: "gateway:stream", data: {streamId,
    /// chatflowId, chatId}, seq: 0}</c>, then every upstream event as <c>{event, data, seq}</c>, in
    /// order, then <c>{event: "result", data: TROM.AI's JSON answer, seq}</c>. Cancelling the stream
    /// aborts the prediction upstream; losing the connection does not: it runs on, for <c>Resume</c>.
    /// </summary>
    public IAsyncEnumerable<PredictionEvent> Predict(string chatflowId, JsonElement request, CancellationToken cancellationToken) =>
        predictions.RunAsync(Bridged, chatflowId, request, Context.ConnectionAborted, cancellationToken); // read now: the hub is gone once the stream runs

    /// <summary>
    /// Streams a prediction's stream again, from any connection on any instance: its header, every
    /// kept item after <paramref name="afterSeq"/> (the last <c>seq</c> you got; 0 for all), the live
    /// rest, then its result, each exactly once and in order. Cancelling it stops the reading only.
    /// </summary>
    public IAsyncEnumerable<PredictionEvent> Resume(string streamId, long afterSeq, CancellationToken cancellationToken) =>
        predictions.ResumeAsync(Bridged, streamId, afterSeq, cancellationToken);

    /// <summary>
    /// Sets the TROM.AI key (a chatflow's API key) this connection's <c>Predict</c> and <c>Abort</c> send
    /// from now on; null or empty goes back to the one the connection's request brought. For clients that
    /// cannot put it in the <c>X-TromAi-Key</c> header: a browser's WebSocket, with gateway authentication on.
    /// </summary>
    public void UseTromAiKey(string? key)
    {
        if (key is not null && !UpstreamHeaderPolicy.IsValidKey(key))
        {
            throw new HubException($"A TROM.AI key is 1 to {UpstreamHeaderPolicy.MaxKeyLength} visible ASCII characters.");
        }

        Bridged.UseTromAiKey(key);
    }

    /// <summary>Aborts a prediction of this connection, e.g. one started over REST.</summary>
    public Task Abort(string chatflowId, string chatId) => predictions.AbortAsync(Bridged, chatflowId, chatId);
}
