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

# The Node test upstream and the JavaScript SignalR client, from the lock file. Re-installed only
# when the lock file changed since the last install.
upstream=Gateway.Tests/upstream
if ! cmp -s "$upstream/package-lock.json" "$upstream/node_modules/.installed-lock.json" 2>/dev/null; then
  (cd "$upstream" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$upstream/package-lock.json" "$upstream/node_modules/.installed-lock.json"
fi

dotnet test TromAi.Gateway.sln -c Release "$@"
