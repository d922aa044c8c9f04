#!/usr/bin/env bash
# bptd-iso15118's own environment: a Java runtime (the iso15118 package's EXI codec is a
# jar driven through py4j), iproute2 (the tests' veth pairs) and the virtual environment
# .venv-iso15118 at the repo root (iso15118 pins pydantic 1, so it cannot share the main
# .venv). Idempotent: does nothing when all are there and the venv's stamp matches the pins.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${BPTD_ISO15118_VENV:-.venv-iso15118}
PYTHON=${PYTHON:-python3}
# iso15118 0.31.2 pins pydantic 1.10.21, cryptography 44.0.0, environs <15, psutil <7;
# its EVCC (used by the tests) also imports aiofile, which the wheel does not declare.
PINS=(
    "iso15118==0.31.2"
    "pydantic==1.10.21"
    "cryptography==44.0.0"
    "environs==14.1.1"
    "psutil==6.1.1"
    "py4j==0.10.9.9"
    "aiofile==3.9.0"
    "pyzmq==26.4.0"
    "structlog==25.4.0"
    # what those pull in, pinned as tested
    "marshmallow==4.4.0"
    "python-dotenv==1.2.4"
    "typing-extensions==4.16.0"
    "mypy-extensions==1.2.0"
    "types-psutil==6.1.0.20241221"
    "types-toml==0.10.8.20260518"
    "caio==0.9.25"
    "cffi==2.1.1"
    "pycparser==3.12"
)
STAMP="$VENV/.bptd-iso15118-installed"
WANT="${PINS[*]}"

# the EXI codec's Java runtime; iproute2 for the tests' veth pairs
missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "iso15118 setup: missing ${missing[*]} (install them as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
# bptd itself only for bptd.api.client and bptd.iso15118 (no numba & co. in this venv)
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
"$VENV/bin/python" -c "import iso15118, zmq, structlog, bptd.api.client"
echo "$WANT" >"$STAMP"
echo "iso15118 setup: $VENV ready"
