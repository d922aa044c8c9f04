"""``bptd-iso15118 --iface IFACE [--control ENDPOINT] [--connector NAME] [--authorize bptd|self]``

The SECC of the ``iso15118`` package on ``--iface`` (the PLC modem's interface behind SLAC,
or one end of a veth pair in tests) with :class:`~bptd.iso15118.controller.BptdEVSEController`
for one bptd connector. Runs in the frontend's own virtual environment (docs/iso15118.md).
Exit codes: 0 after SIGTERM / SIGINT, 2 for a bad command line or a missing ``iso15118``
package / Java runtime, 1 when the SECC stops on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence

import structlog

from bptd import __version__, logs

log = structlog.get_logger(__name__)

DEFAULT_CONTROL = "ipc:///run/bptd/control.sock"
PROTOCOLS = ("DIN_SPEC_70121", "ISO_15118_2", "ISO_15118_20_DC")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptd-iso15118",
        description="ISO 15118-20 / ISO 15118-2 / DIN 70121 SECC frontend of bptd.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"bptd-iso15118 {__version__}")
    p.add_argument("--iface", required=True, help="network interface of the PLC modem (IPv6)")
    p.add_argument("--control", default=DEFAULT_CONTROL, help="bptd's command socket")
    p.add_argument("--server-key", help="bptd's CURVE public key (tcp:// endpoints)")
    p.add_argument("--connector", default="ccs", help="the bptd connector behind this modem")
    p.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help="SupportedAppProtocol offer, by priority (DIN_SPEC_70121, ISO_15118_2, "
        "ISO_15118_20_DC)",
    )
    p.add_argument(
        "--authorize",
        choices=("bptd", "self"),
        default="bptd",
        help="bptd: wait until bptd authorizes the connector (OCPP, operator); "
        "self: authorize at the vehicle's request (free charging)",
    )
    p.add_argument("--evse-id", default="DE*BPT*E0001", help="EVSE ID sent to the vehicle")
    p.add_argument("--no-bpt", action="store_true", help="offer DC only, not DC_BPT (-20)")
    p.add_argument(
        "--env-file",
        default="/etc/bptd/iso15118.env",
        help="further iso15118 package settings (KEY=value lines), when the file exists",
    )
    p.add_argument("--timeout", type=float, default=1.0, help="bptd answer timeout, s")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="json", choices=("json", "console"))
    p.add_argument(
        "--stack-log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="log level of the iso15118 package's own (standard library) logging",
    )
    return p


def _environment(args: argparse.Namespace) -> None:
    """The iso15118 package reads its settings from the environment."""
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f"--protocols: unknown {', '.join(unknown) or '(none)'}")
    os.environ.update(
        {
            "NETWORK_INTERFACE": args.iface,
            "PROTOCOLS": ",".join(protocols),
            "AUTH_MODES": "EIM",
            "SECC_ENFORCE_TLS": "false",
            "FREE_CHARGING_SERVICE": "false",
            "USE_CPO_BACKEND": "false",
            "MESSAGE_LOG_JSON": "false",
            "MESSAGE_LOG_EXI": "false",
            "LOG_LEVEL": args.stack_log_level.upper(),
        }
    )


async def _run(args: argparse.Namespace) -> int:
    from iso15118.secc import SECCHandler
    from iso15118.secc.controller.interface import ServiceStatus
    from iso15118.secc.secc_settings import Config
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec

    from bptd.api.client import AsyncClient
    from bptd.iso15118.bridge import HlcBridge
    from bptd.iso15118.controller import BptdEVSEController

    logging.getLogger().setLevel(args.stack_log_level.upper())
    config = Config()
    env_file = args.env_file if os.path.isfile(args.env_file) else "/bptd-iso15118-none.env"
    config.load_envs(env_path=env_file)  # the environment set above, then the file
    client = AsyncClient(args.control, timeout_s=args.timeout, server_key=args.server_key)
    bridge = HlcBridge(client, args.connector, authorize=args.authorize)
    controller = BptdEVSEController(bridge, evse_id=args.evse_id, bpt=not args.no_bpt)
    await controller.set_status(ServiceStatus.STARTING)
    handler = SECCHandler(exi_codec=ExificientEXICodec(), evse_controller=controller, config=config)
    task = asyncio.create_task(handler.start(args.iface), name="secc")
    loop = asyncio.get_running_loop()
    stopping: list[bool] = []

    def stop() -> None:
        stopping.append(True)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    log.info(
        "iso15118_started", iface=args.iface, control=args.control, connector=args.connector,
        protocols=os.environ["PROTOCOLS"], authorize=args.authorize,
    )  # fmt: skip
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:
            raise
    except Exception as exc:
        log.error("iso15118_secc_failed", error=str(exc))
        return 1
    finally:
        if bridge.phase.value != "none":  # a session was running: bptd forgets the vehicle
            with contextlib.suppress(Exception):
                await bridge.end()
        await client.aclose()
    log.info("iso15118_stopped")
    return 0 if stopping else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, json=args.log_format == "json")
    try:
        _environment(args)
    except ValueError as exc:
        print(f"bptd-iso15118: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        import iso15118  # noqa: F401
    except ImportError:
        missing = "the iso15118 package is missing; run it from its own virtual environment"
        print(f"bptd-iso15118: {missing} (see docs/iso15118.md)", file=sys.stderr)  # noqa: T201
        return 2
    if shutil.which("java") is None:
        print("bptd-iso15118: no Java runtime (java) for the EXI codec", file=sys.stderr)  # noqa: T201
        return 2
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
