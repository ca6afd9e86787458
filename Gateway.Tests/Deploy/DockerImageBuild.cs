namespace TromAi.Gateway.Tests.Deploy;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DockerImageBuild
{
    public const string Name = "Docker image build";
}
