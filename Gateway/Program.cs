using TromAi.Gateway;

RuntimeTuning.Apply(); // first: the runtime reads these settings once, early

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddTromAiGateway(builder.Configuration);
builder.Services.AddTromAiGracefulShutdown();

var app = builder.Build();
return await app.RunTromAiGatewayAsync();
