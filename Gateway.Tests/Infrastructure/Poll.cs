namespace TromAi.Gateway.Tests.Infrastructure;

/// <summary>Waits for state that announces no change (a count the gateway keeps), asking again at a short interval until it holds.</summary>
public static class Poll
{
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, Func<string> what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (!condition())
        {
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"Timed out after {timeout} waiting for {what()}.");
            }

            await Task.Delay(20);
        }
    }
}
