using TromAi.Gateway.Bench.Probe;

/// <summary>
/// Loaded into the gateway process by <c>DOTNET_STARTUP_HOOKS</c> (see <see cref="GatewayProbeServer"/>). The
/// runtime looks for exactly this type name, in no namespace, with a static <c>Initialize</c>.
/// </summary>
internal static class StartupHook
{
    public static void Initialize() => GatewayProbeServer.Start(Environment.GetEnvironmentVariable(GatewayProbeServer.SocketPathVariable));
}
