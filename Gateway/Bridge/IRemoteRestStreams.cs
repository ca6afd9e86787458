namespace TromAi.Gateway.Bridge;

/// <summary>
/// Keeps the stream of a REST prediction whose hub connection another gateway instance holds (Socket.IO
/// mode): the events arrive on that connection's upstream socket, there, while the POST and its answer
/// pass here. That instance records the stream (<see cref="RestStreams"/>); this one tells it when to
/// begin and how the POST ended. Without a shared bus (one instance) every connection is local, and
/// nothing is kept elsewhere (<see cref="NoRemoteRestStreams"/>).
/// </summary>
internal interface IRemoteRestStreams
{
    /// <summary>
    /// Asks <paramref name="instance"/> to begin the stream on the connection handing out
    /// <paramref name="socketIOClientId"/>, before the POST leaves; the stream's id once it has begun,
    /// null when it cannot be kept there (the reason is logged; the POST is then forwarded unkept).
    /// Waits at most <c>Gateway:Redis:OperationTimeout</c>, and never throws for a failure to keep.
    /// </summary>
    Task<string?> BeginAsync(string instance, string socketIOClientId, string chatflowId, string? chatId, CancellationToken cancellationToken);

    /// <summary>Reports the POST's end to the instance recording stream <paramref name="streamId"/>, which ends it after its barrier.</summary>
    Task EndAsync(string instance, string streamId, RestAnswer answer);
}
