"""``bptd-http [--config FILE] [--bind ADDR] [--port N] [--control EP] [--telemetry EP]``
and ``bptd-http hash-password``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web

from bptd import __version__, logs
from bptd.http.app import Api, make_app
from bptd.http.link import Link
from bptd.http.passwords import HashError, make
from bptd.http.settings import Settings, SettingsError, load

log = structlog.get_logger("bptd.http")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptd-http",
        description="HTTP frontend of bptd: the vendor supervisor's REST paths, a REST API "
        "mirroring the commands (OpenAPI at /openapi.json) and a live station page.",
        epilog="bptd-http hash-password [--stdin]: print a password hash for [http.users].",
    )
    p.add_argument("--version", action="version", version=f"bptd-http {__version__}")
    p.add_argument("--config", help="TOML file with an [http] table (docs/http.md)")
    p.add_argument("--bind", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8333; 0 = any free port)")
    p.add_argument("--control", help="bptd's command socket (default ipc:///run/bptd/control.sock)")
    p.add_argument("--telemetry", help="bptd's telemetry socket (default: next to --control)")
    p.add_argument("--server-key", help="bptd's CURVE public key (tcp:// endpoints)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="json", choices=["json", "console"])
    return p


def hash_password(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="bptd-http hash-password",
        description="Print a password hash for the [http.users] table of the config.",
    )
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")
    args = p.parse_args(argv)
    try:
        if args.stdin or not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                print("bptd-http: the passwords differ", file=sys.stderr)  # noqa: T201
                return 2
        print(make(password))  # noqa: T201
    except HashError as exc:
        print(f"bptd-http: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except (EOFError, KeyboardInterrupt):
        return 130
    return 0


async def serve(settings: Settings) -> int:
    """Run until SIGTERM / SIGINT; the exit code."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    link = Link(settings.control, settings.telemetry, settings.server_key, settings.history_s)
    runner: web.AppRunner | None = None
    try:
        if not await link.wait_ready(stopping):
            return 0
        api = Api(settings, link)
        await api.load()
        link.start_telemetry()
        runner = web.AppRunner(make_app(api), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, settings.bind, settings.port)
        try:
            await site.start()
        except OSError as exc:
            print(  # noqa: T201
                f"bptd-http: cannot listen on {settings.bind}:{settings.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
        ports = [a[1] for a in runner.addresses if isinstance(a, tuple)]
        log.info(
            "http_listening",
            bind=settings.bind,
            port=ports[0] if ports else settings.port,
            control=settings.control,
            users=len(settings.users),
            read_auth=settings.read_auth,
        )
        if not settings.users:
            log.warning("http_no_users", detail="no [http.users]: every write is refused")
        await stopping.wait()
        log.info("http_stopping")
        return 0
    finally:
        if runner is not None:
            await runner.cleanup()
        await link.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hash-password"]:
        return hash_password(argv[1:])
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, json=args.log_format == "json")
    try:
        settings = load(
            args.config,
            {
                "bind": args.bind,
                "port": args.port,
                "control": args.control,
                "telemetry": args.telemetry,
                "server_key": args.server_key,
            },
        )
    except SettingsError as exc:
        print(f"bptd-http: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
