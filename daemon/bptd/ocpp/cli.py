"""``bptd-ocpp [--control ENDPOINT] --csms-url URL --station-id ID --ocpp-version 1.6|2.0.1|2.1``"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from bptd import __version__, logs
from bptd.api.client import telemetry_endpoint
from bptd.ocpp.app import VERSIONS, Frontend, Options
from bptd.ocpp.devmodel import DeviceModel
from bptd.ocpp.store import StateLocked

DEFAULT_CONTROL = "ipc:///run/bptd/control.sock"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptd-ocpp",
        description="OCPP 1.6J / 2.0.1 / 2.1 charging-station frontend of bptd.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"bptd-ocpp {__version__}")
    p.add_argument("--control", default=DEFAULT_CONTROL, help="bptd's command socket")
    p.add_argument(
        "--telemetry",
        help="bptd's telemetry socket (default: next to --control: telemetry.sock / port + 1)",
    )
    p.add_argument("--server-key", help="bptd's CURVE public key (tcp:// endpoints)")
    p.add_argument(
        "--csms-url", required=True, help="ws:// or wss:// URL; the station id is appended"
    )
    p.add_argument("--station-id", required=True, help="the charging station's identity")
    p.add_argument("--ocpp-version", required=True, choices=VERSIONS)
    p.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "/var/lib/bptd-ocpp",
        help="offline queue, registers, profiles, settings (systemd: $STATE_DIRECTORY)",
    )
    p.add_argument(
        "--password-file",
        help="HTTP Basic auth password (security profile 1/2); also $BPTD_OCPP_PASSWORD",
    )
    p.add_argument("--reconnect-min", type=float, default=1.0, help="first reconnect delay, s")
    p.add_argument("--reconnect-max", type=float, default=60.0, help="longest reconnect delay, s")
    p.add_argument("--response-timeout", type=float, default=30.0, help="CSMS answer timeout, s")
    p.add_argument("--local-id-tag", default="bptd-local",
                   help="id tag of transactions not started through OCPP")  # fmt: skip
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a device-model default (1.6 key or Component.Variable), e.g. "
        "MeterValueSampleInterval=30; values the CSMS sets win",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="json", choices=["json", "console"])
    return p


def options(args: argparse.Namespace) -> Options:
    url = urlparse(args.csms_url)
    if url.scheme not in ("ws", "wss") or not url.netloc:
        raise ValueError(f"--csms-url {args.csms_url!r}: a ws:// or wss:// URL")
    if not args.station_id or "/" in args.station_id:
        raise ValueError("--station-id must not be empty nor contain '/'")
    telemetry = args.telemetry or telemetry_endpoint(args.control)
    variables: dict[str, str] = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--var {item!r}: NAME=VALUE")
        variables[name.strip()] = value.strip()
    DeviceModel(args.ocpp_version, {}, variables)  # check the names and values now
    password = os.environ.get("BPTD_OCPP_PASSWORD") or None
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    if args.reconnect_min <= 0 or args.reconnect_max < args.reconnect_min:
        raise ValueError("--reconnect-min must be > 0 and <= --reconnect-max")
    return Options(
        control=args.control,
        telemetry=telemetry,
        csms_url=args.csms_url,
        station_id=args.station_id,
        version=args.ocpp_version,
        state_dir=args.state_dir,
        password=password,
        server_key=args.server_key,
        reconnect_min_s=args.reconnect_min,
        reconnect_max_s=args.reconnect_max,
        response_timeout_s=args.response_timeout,
        local_id_tag=args.local_id_tag,
        variables=variables,
    )


async def _run(opts: Options) -> None:
    # the handlers first: a SIGTERM at any moment from here on is an orderly stop
    loop = asyncio.get_running_loop()
    holder: list[Frontend] = []
    requested = []

    def stop() -> None:
        requested.append(True)
        for fe in holder:
            fe.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    fe = Frontend(opts)
    holder.append(fe)
    if requested:
        fe.stop()
    await fe.run()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, json=args.log_format == "json")
    try:
        opts = options(args)
    except (ValueError, OSError) as exc:
        print(f"bptd-ocpp: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        asyncio.run(_run(opts))
    except StateLocked as exc:
        print(f"bptd-ocpp: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
