using TromAi.Gateway;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddTromAiGateway(builder.Configuration);

var app = builder.Build();
return await app.RunTromAiGatewayAsync();
