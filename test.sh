#!/usr/bin/env bash
# Installs what the tests need (only what is missing), then runs every test in the solution.
# Usage: ./test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v node >/dev/null || apt_install nodejs npm
command -v redis-server >/dev/null || apt_install redis-server   # the scale-out tests start their own
command -v kubectl >/dev/null || apt_install kubernetes-client   # the deploy tests render deploy/ with `kubectl kustomize`
command -v chromium >/dev/null || apt_install chromium           # the playground tests drive Debian's, headless

# The Node test upstream and the JavaScript SignalR client; playwright-core for the browser tests
# (it downloads no browser); kubernetes-models for the deploy tests' offline schema check. Each from
# its lock file, re-installed only when that lock file changed since its last install.
# (Gateway/Playground's packages are the build's: Gateway.csproj runs npm ci.)
for dir in Gateway.Tests/upstream Gateway.Tests/browser Gateway.Tests/manifest-validator; do
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
done

dotnet test TromAi.Gateway.sln -c Release "$@"
