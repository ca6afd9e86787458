using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.IdentityModel.Tokens;

namespace TromAi.Gateway.Security;

/// <summary>Authentication (API keys, JWT), CORS and request limits, all optional and off or generous by default.</summary>
internal static class GatewaySecurity
{
    private const string GatewayScheme = "Gateway";

    public static IServiceCollection AddGatewaySecurity(this IServiceCollection services, GatewayOptions snapshot)
    {
        services.AddCors(cors =>
        {
            if (snapshot.Cors.AllowedOrigins.Count > 0)
            {
                // Named origins with credentials, as SignalR clients send cookies and auth headers: never "*".
                cors.AddDefaultPolicy(policy => policy.WithOrigins([.. snapshot.Cors.AllowedOrigins]).AllowAnyHeader().AllowAnyMethod().AllowCredentials());
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
            authentication.AddJwtBearer(jwt =>
            {
                jwt.MapInboundClaims = false;
                jwt.Authority = auth.Jwt.Authority;
                jwt.Audience = auth.Jwt.Audience;
                jwt.TokenValidationParameters.ValidIssuer = auth.Jwt.Issuer;
                jwt.TokenValidationParameters.ValidateIssuer = auth.Jwt.Issuer is not null || auth.Jwt.Authority is not null;
                jwt.TokenValidationParameters.ValidateAudience = auth.Jwt.Audience is not null;
                if (!string.IsNullOrWhiteSpace(auth.Jwt.SigningKey))
                {
                    jwt.TokenValidationParameters.IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.Jwt.SigningKey));
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
