namespace TromAi.Gateway.Bridge;

/// <summary>What a stream is, fixed when its prediction starts: what a resumer is told first, and who may resume it.</summary>
/// <param name="StreamId">See <see cref="StreamIds"/>.</param>
/// <param name="ChatId">The prediction's <c>chatId</c>, when known (a REST body may leave it to TROM.AI).</param>
/// <param name="Owner">The principal that started it (<see cref="ConnectionOwner"/>); null without gateway authentication.</param>
internal sealed record StreamStart(string StreamId, string ChatflowId, string? ChatId, string? Owner);
