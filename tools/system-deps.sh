#!/usr/bin/env bash
# System packages the test suite uses, installed when missing and possible (Debian, root).
# systemd: `systemd-analyze verify` checks the units in systemd/.
# Then every tools/setup.d/*.sh runs (a frontend's own setup: Debian packages, its venv).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "system-deps: missing ${missing[*]} (install them to run every test)" >&2
    else
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
for script in tools/setup.d/*.sh; do
    [ -e "$script" ] || continue
    bash "$script"
done
