# TROM.AI Gateway container image.
#
#   docker build -t tromai-gateway .
#   docker run -p 8080:8080 -e Gateway__Upstream__BaseUrl=http://tromai:3000 tromai-gateway
#
# Configured by environment variables only (README, "Configuration"): Gateway__Upstream__BaseUrl,
# Gateway__Redis__Configuration, Gateway__Drain__Timeout, ... Listens on 8080 as the non-root user
# `app` (uid 1654) that the .NET images define. deploy/ runs this image on Kubernetes.
#
# Gateway.Tests/Deploy/ checks this file: the publish below runs there on the files this build sees
# (.dockerignore), the port agrees with deploy/, and the HEALTHCHECK command passes against the
# published gateway.

# ---- build: the SDK, plus Node.js for the playground -------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build

# The build runs `npm ci` in Gateway/Playground (Gateway.csproj) to embed the browser build of
# @microsoft/signalr. Node.js and npm come from the distribution's packages (Ubuntu 24.04 under
# sdk:10.0: Node.js 18, npm 9, enough for that lock file), in this stage only.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Restore first, from the project files alone, so this layer is reused until a package changes.
COPY Directory.Build.props Directory.Packages.props .editorconfig ./
COPY Gateway/Gateway.csproj Gateway/
RUN dotnet restore Gateway/Gateway.csproj

COPY . .
RUN dotnet publish Gateway/Gateway.csproj -c Release -o /app --no-restore

# ---- runtime: ASP.NET Core, the published output, nothing else ----------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime

WORKDIR /app
COPY --from=build /app ./

# Every interface, port 8080 (the gateway's own default, http://localhost:8080, would be unreachable
# from outside the container). ASPNETCORE_HTTP_PORTS (8080 in the base image) is cleared so that
# Urls decides alone, without ASP.NET Core's "overriding" warning.
ENV Urls=http://+:8080 \
    ASPNETCORE_HTTP_PORTS=""
EXPOSE 8080

# Numeric, so Kubernetes' runAsNonRoot can verify it (APP_UID=1654, the image's `app` user).
USER $APP_UID

# Liveness, with what the image has (bash, no curl): GET /healthz on the port in Urls, healthy on 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "u=${Urls%%;*}; p=${u##*:}; p=${p%%/*}; exec 3<>/dev/tcp/127.0.0.1/${p:-8080} || exit 1; printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3; read -r -t 4 _ status _ <&3; [ \"$status\" = 200 ]"]

ENTRYPOINT ["dotnet", "TromAi.Gateway.dll"]
