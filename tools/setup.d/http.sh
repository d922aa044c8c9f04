#!/usr/bin/env bash
# bptd-http's page test: Debian's Chromium and its WebDriver (driven by selenium from the
# main venv's test extras). Idempotent: does nothing when both are installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "http setup: no chromium / chromedriver (install chromium and chromium-driver;" \
        "the page test is skipped without them)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
