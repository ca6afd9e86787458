namespace TromAi.Gateway.Bridge;

/// <summary>One instance alone: no connection lives elsewhere, so there is nothing to keep there.</summary>
internal sealed class NoRemoteRestStreams : IRemoteRestStreams
{
    public Task<string?> BeginAsync(string instance, string socketIOClientId, string chatflowId, string? chatId, CancellationToken cancellationToken) =>
        Task.FromResult<string?>(null);

    public Task EndAsync(string instance, string streamId, RestAnswer answer) => Task.CompletedTask;
}
