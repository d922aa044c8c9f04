"""Command lines: ``bptd`` (run, sim, chademo, demo, warm-cache, check-config) and ``bptctl``.

One error boundary: a bad config or argument is one clear message on stderr and exit
code 2; ``--debug`` lets tracebacks through.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from bptd import __version__, logs
from bptd.canbus import parse_bus_spec
from bptd.config import load_config
from bptd.errors import BptdError, BusSpecError, ConfigError

EXIT_USAGE = 2


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="station config (TOML); default: the reference station")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="json", choices=["json", "console"])


def _cmd_sim(args: argparse.Namespace) -> int:
    from bptd.sim.server import serve
    from bptd.sim.station import VirtualStation

    cfg = load_config(args.config)
    spec = parse_bus_spec(args.can or "udp_multicast:43113")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    chademo_spec = parse_bus_spec(args.chademo_can) if args.chademo_can else None
    station = VirtualStation(cfg, spec)
    evcc = chademo_ev = None
    try:
        station.start()
        if args.daemon:
            from bptd.sim.evcc import VirtualEvcc

            evcc = VirtualEvcc(station, args.daemon).start()
        if chademo_spec is not None:
            from bptd.sim.chademo_ev import VirtualChademoEv

            try:
                chademo_ev = VirtualChademoEv(station, chademo_spec, args.chademo_connector)
            except ValueError as exc:
                raise ConfigError(cfg.source, [str(exc)]) from None
            chademo_ev.start()
        serve(station, args.control or "ipc:///run/bptd/sim.sock", stop)
    finally:
        if chademo_ev is not None:
            chademo_ev.close()
        if evcc is not None:
            evcc.close()
        station.close()
    return 0


def _cmd_chademo(args: argparse.Namespace) -> int:
    from bptd.chademo import ChademoCharger

    cfg = load_config(args.config)
    names = [c.name for c in cfg.connectors]
    connector = args.connector or next(
        (c.name for c in cfg.connectors if c.kind == "chademo"), "chademo"
    )
    if connector not in names:
        raise ConfigError(cfg.source, [f"no connector {connector!r}; connectors: {names}"])
    spec = parse_bus_spec(args.can or cfg.can.chademo_bus)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        charger = ChademoCharger(spec, args.control or cfg.api.control, connector, pins=args.pins)
    except OSError as exc:
        raise BptdError(f"cannot open the CHAdeMO bus {spec}: {exc}") from None
    with charger:
        stop.wait()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from bptd.daemon.app import Daemon, DaemonOptions

    cfg = load_config(args.config)
    if args.can:
        parse_bus_spec(args.can)
    options = DaemonOptions(
        sim=args.sim,
        can=args.can,
        control=args.control,
        telemetry=args.telemetry,
        records_dir=args.records,
        evcc=not args.no_evcc,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    daemon = Daemon(cfg, options).start()
    daemon.run(stop)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from bptd.demo import run_demo

    return run_demo(load_config(args.config))


def _cmd_check_config(args: argparse.Namespace) -> int:
    from bptd.profile import load_profile

    cfg = load_config(args.config)
    load_profile(cfg.station.profile or None)
    print(
        f"{cfg.source}: ok ({len(cfg.connectors)} connectors, {len(cfg.modules)} modules, "
        f"{len(cfg.contactor_configurations)} contactor configurations)"
    )
    return 0


def _cmd_warm_cache(args: argparse.Namespace) -> int:
    import time

    from bptd.limits import warm_up

    t0 = time.perf_counter()
    compiled = warm_up()
    ms = (time.perf_counter() - t0) * 1000
    where = "numba kernels cached" if compiled else "numba unavailable: the reference runs"
    print(f"limits kernels ready in {ms:.0f} ms ({where})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bptd",
        description="Supervisor daemon for bidirectional DC EV chargers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bptd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "sim",
        help="run the virtual station alone, as a bus peer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_common(p)
    p.add_argument(
        "--can",
        help="CAN spec (udp_multicast:PORT, virtual:NAME, socketcan:IF)",
        default="udp_multicast:43113",
    )
    p.add_argument(
        "--control", help="ZeroMQ endpoint of the sim socket", default="ipc:///run/bptd/sim.sock"
    )
    p.add_argument(
        "--daemon",
        metavar="ENDPOINT",
        help="the daemon's command socket: the virtual EVCC plays the CCS vehicles' "
        "ISO 15118 side through its hlc commands",
    )
    p.add_argument(
        "--chademo-can",
        metavar="SPEC",
        help="CHAdeMO vehicle bus: the virtual CHAdeMO vehicle ECU serves the CHAdeMO "
        "connector's vehicles there (bptd chademo is the charger side)",
    )
    p.add_argument(
        "--chademo-connector",
        metavar="NAME",
        help="the connector of that bus (default: the first of kind chademo)",
    )
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser(
        "chademo",
        help="the CHAdeMO charger on its CAN bus, reporting to the daemon (hlc commands)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_common(p)
    p.add_argument("--control", help="the daemon's command socket (default: api.control)")
    p.add_argument("--can", help="CHAdeMO bus CAN spec (default: the config's can.chademo_bus)")
    p.add_argument(
        "--connector", help="the daemon's connector (default: the first of kind chademo)"
    )
    p.add_argument(
        "--pins",
        choices=["auto", "harness", "none"],
        default="auto",
        help="d1 / d2: 'harness' = the simulation's harness frame on the bus (auto on "
        "virtual / udp_multicast buses), 'none' = not wired (logged only)",
    )
    p.set_defaults(func=_cmd_chademo)

    p = sub.add_parser(
        "run",
        help="the daemon: CANopen master, charge sessions, limits, ZeroMQ API",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_common(p)
    p.add_argument("--sim", action="store_true", help="run the virtual station in-process")
    p.add_argument("--can", help="CAN spec (default: the config's can.bus)")
    p.add_argument("--control", help="command socket endpoint (default: api.control)")
    p.add_argument("--telemetry", help="telemetry socket endpoint (default: api.telemetry)")
    p.add_argument("--records", help="directory of the session journal (default: records.dir)")
    p.add_argument(
        "--no-evcc",
        action="store_true",
        help="with --sim: do not play the vehicles' ISO 15118 side (a real frontend does)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="a bidirectional session on the in-process virtual station")
    _add_common(p)
    p.set_defaults(func=_cmd_demo, log_level="error", log_format="console")

    p = sub.add_parser(
        "warm-cache",
        help="compile the limits kernels into numba's cache "
        "(NUMBA_CACHE_DIR), so a start has no JIT on the control path",
    )
    _add_common(p)
    p.set_defaults(func=_cmd_warm_cache)

    p = sub.add_parser("check-config", help="validate a config file and its device profile")
    _add_common(p)
    p.set_defaults(func=_cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(
        getattr(args, "log_level", "info"), json=getattr(args, "log_format", "json") == "json"
    )
    try:
        return int(args.func(args) or 0)
    except (ConfigError, BusSpecError) as exc:
        if args.debug:
            raise
        print(f"bptd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BptdError as exc:
        if args.debug:
            raise
        print(f"bptd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def chademo_main(argv: Sequence[str] | None = None) -> int:
    """``bptd-chademo ARGS`` = ``bptd chademo ARGS`` (for a console script of its own)."""
    return main(["chademo", *(sys.argv[1:] if argv is None else argv)])


def bptctl_main(argv: Sequence[str] | None = None) -> int:
    from bptd.ctl import main as ctl_main

    return ctl_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
