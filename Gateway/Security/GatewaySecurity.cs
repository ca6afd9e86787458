using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using AspNetCorsOptions = Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace TromAi.Gateway.Security;

/// <summary>Authentication (API keys, JWT), CORS and request limits, all optional and off or generous by default.</summary>
internal static class GatewaySecurity
{
    private const string GatewayScheme = "Gateway";

    public static IServiceCollection AddGatewaySecurity(this IServiceCollection services, GatewayOptions snapshot)
    {
        services.AddCors();
        services.AddOptions<AspNetCorsOptions>().Configure<IOptions<GatewayOptions>>((cors, gateway) =>
        {
            var origins = gateway.Value.Cors.AllowedOrigins;
            if (origins.Count > 0)
            {
                // Named origins with credentials, as SignalR clients send cookies and auth headers: never "*".
                cors.AddDefaultPolicy(policy => policy.WithOrigins([.. origins]).AllowAnyHeader().AllowAnyMethod().AllowCredentials());
            }
        });
        services.AddSingleton<RequestLimits>();
        services.AddForwardedHeadersTrust();

        var auth = snapshot.Auth;
        if (!auth.Enabled)
        {
            services.AddAuthorization();
            return services;
        }

        var authentication = services.AddAuthentication(GatewayScheme)
            .AddPolicyScheme(GatewayScheme, "API key or JWT", scheme => scheme.ForwardDefaultSelector = context =>
                auth.Jwt.Enabled && LooksLikeJwt(ApiKeyAuthenticationHandler.PresentedKey(context.Request))
                    ? JwtBearerDefaults.AuthenticationScheme
                    : ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        if (auth.Jwt.Enabled)
        {
            authentication.AddJwtBearer();
            services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme).Configure<IOptions<GatewayOptions>>((jwt, gateway) =>
            {
                var settings = gateway.Value.Auth.Jwt;
                jwt.MapInboundClaims = false;
                jwt.Authority = settings.Authority;
                jwt.Audience = settings.Audience;
                jwt.TokenValidationParameters.ValidIssuer = settings.Issuer;
                jwt.TokenValidationParameters.ValidateIssuer = settings.Issuer is not null || settings.Authority is not null;
                jwt.TokenValidationParameters.ValidateAudience = settings.Audience is not null;
                if (!string.IsNullOrWhiteSpace(settings.SigningKey))
                {
                    jwt.TokenValidationParameters.IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(settings.SigningKey));
                }

                // Browsers cannot set headers on WebSockets and EventSource: SignalR clients send the token in the query there.
                jwt.Events = new JwtBearerEvents
                {
                    OnMessageReceived = context =>
                    {
                        if (ApiKeyAuthenticationHandler.AccessTokenFromQuery(context.Request) is { } token)
                        {
                            context.Token = token;
                        }

                        return Task.CompletedTask;
                    },
                };
            });
        }

        // Every endpoint, the proxied ones included, needs an authenticated caller unless it says otherwise (health).
        services.AddAuthorization(authorization => authorization.FallbackPolicy = new AuthorizationPolicyBuilder(GatewayScheme).RequireAuthenticatedUser().Build());
        return services;
    }

    public static void UseGatewaySecurity(this WebApplication app, GatewayOptions snapshot)
    {
        app.UseCors();
        app.UseMiddleware<RequestLimitsMiddleware>();
        if (snapshot.Auth.Enabled)
        {
            app.UseAuthentication();
        }

        app.UseAuthorization();
    }

    private static bool LooksLikeJwt(string? token) => token is not null && token.Count(c => c == '.') == 2;
}
