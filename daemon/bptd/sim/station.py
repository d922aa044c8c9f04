"""The virtual station on a CAN bus: every chipset and module as a canopen LocalNode.

``VirtualStation(config, bus)`` builds one node per device of the station config from the
same EDS and profile the daemon uses, and runs the plant (:mod:`bptd.sim.plant`) in its own
thread at ``config.sim.tick_s``. Actions (plug a vehicle, inject a fault, ...) are queued
to that thread and answered once applied, so one thread owns the station state.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import can
import canopen
import structlog

from bptd.canbus import BusSpec, parse_bus_spec
from bptd.codes import DC_MINUS, DC_PLUS, SERIES, module_bits
from bptd.config import Config
from bptd.profile import Profile, load_profile
from bptd.sim.chipset import ChipsetModel
from bptd.sim.module import ModuleModel
from bptd.sim.node import SimNode
from bptd.sim.plant import Plant
from bptd.sim.vehicle import Vehicle, vehicle_spec

log = structlog.get_logger(__name__)

CAN_ERR_FLAG_BUSOFF = 0x00000040  # linux/can/error.h CAN_ERR_BUSOFF
FAULT_KINDS = (
    "module_heartbeat_loss",
    "module_overtemp",
    "module_hardware",
    "insulation_fault",
    "estop",
    "bus_off",
    "contactor_weld",
    "cp_short",
)
CONTACTOR_NAMES = {"dc_plus": DC_PLUS, "dc_minus": DC_MINUS, "series": SERIES}
SERIAL_BASE = 0x00B7D000


class SimActionError(ValueError):
    """A sim action was malformed or named something the station does not have."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class VirtualStation:
    """Chipsets, modules and vehicles of ``config`` as peers on ``bus``."""

    def __init__(
        self, config: Config, bus: can.BusABC | BusSpec | str, profile: Profile | None = None
    ) -> None:
        self.config = config
        self.profile = profile or load_profile(config.station.profile or None)
        if isinstance(bus, str):
            bus = parse_bus_spec(bus)
        self._own_bus = isinstance(bus, BusSpec)
        self._bus = bus.open() if isinstance(bus, BusSpec) else bus
        self.network = canopen.Network(self._bus)
        self.plant = Plant(config)
        self.nodes: dict[str, SimNode] = {}
        self._actions: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}
        self._closed = False
        self.ticks = 0
        self._build_nodes()

    # ------------------------------------------------------------------ construction
    def _build_nodes(self) -> None:
        p = self.profile
        for i, c in enumerate(self.config.connectors):
            model = self.plant.chipsets[c.name]
            self.nodes[f"chipset.{c.name}"] = SimNode(
                self.network,
                c.chipset_node_id,
                p["chipset"],
                c.serial or SERIAL_BASE + 0x100 + i,
                f"chipset.{c.name}",
                on_comm_fault=model.comm_fault,
                on_reset=model.reset,
                heartbeat_ms=c.heartbeat_ms,
            )
        for m in self.config.modules:
            mm = self.plant.modules[m.n]
            stages = (
                ("dcdc", m.dcdc_node_id, m.serial_dcdc, 0x200),
                ("afe", m.afe_node_id, m.serial_afe, 0x300),
            )
            for stage, node_id, serial, base in stages:
                self.nodes[f"{stage}.{m.n}"] = SimNode(
                    self.network,
                    node_id,
                    p[stage],
                    serial or SERIAL_BASE + base + m.n,
                    f"{stage}.{m.n}",
                    on_comm_fault=lambda k, mm=mm, stage=stage: mm.comm_fault(k, stage),
                    on_reset=mm.reset,
                    heartbeat_ms=m.heartbeat_ms,
                )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VirtualStation:
        """Connect, boot every device (boot-up message, heartbeat) and start the plant thread."""
        self.network.connect()
        for node in self.nodes.values():
            node.boot()
        self._thread = threading.Thread(target=self._run, name="bptd-sim", daemon=True)
        self._thread.start()
        log.info("sim_started", nodes=len(self.nodes), bus=str(self._bus.channel_info))
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for node in self.nodes.values():
            node.close()
        try:
            self.network.disconnect()
        except Exception:  # the bus may already be gone
            log.debug("sim_disconnect_failed", exc_info=True)
        log.info("sim_stopped")

    def __enter__(self) -> VirtualStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        tick = self.config.sim.tick_s
        last = time.monotonic()
        deadline = last
        while not self._stop.is_set():
            now = time.monotonic()
            dt = min(max(now - last, 0.0), 0.05)
            last = now
            try:
                self._tick(now, dt)
            except Exception:
                log.exception("sim_tick_failed")
            deadline += tick
            delay = deadline - time.monotonic()
            if delay < -0.1:
                deadline = time.monotonic()
                delay = 0
            self._stop.wait(max(0.0, delay))

    def _tick(self, now: float, dt: float) -> None:
        while True:
            try:
                fn, fut = self._actions.get_nowait()
            except queue.Empty:
                break
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)
        for node in self.nodes.values():
            node.poll(now)
        for c in self.config.connectors:
            node = self.nodes[f"chipset.{c.name}"]
            ch = self.plant.chipsets[c.name]
            ch.cmd.update(node.commands())
            for name in ch.params:
                ch.params[name] = node.param(name)
            ch.operational = node.operational
            ch.armed = node.rpdo_seen
        for m in self.config.modules:
            mm = self.plant.modules[m.n]
            dn, an = self.nodes[f"dcdc.{m.n}"], self.nodes[f"afe.{m.n}"]
            mm.dcdc.update(dn.commands())
            mm.afe.update(an.commands())
            mm.dcdc_operational = dn.operational
            mm.afe_operational = an.operational
        self.plant.step(now, dt)
        for c in self.config.connectors:
            node = self.nodes[f"chipset.{c.name}"]
            ch = self.plant.chipsets[c.name]
            node.set_status(ch.status())
            for e in ch.emcys:
                node.send_emcy(e)
            ch.emcys.clear()
        for m in self.config.modules:
            mm = self.plant.modules[m.n]
            dn, an = self.nodes[f"dcdc.{m.n}"], self.nodes[f"afe.{m.n}"]
            dn.set_status(mm.dcdc_status())
            an.set_status(mm.afe_status())
            for e in mm.emcys_dcdc:
                dn.send_emcy(e)
            for e in mm.emcys_afe:
                an.send_emcy(e)
            mm.emcys_dcdc.clear()
            mm.emcys_afe.clear()
        for node in self.nodes.values():
            node.transmit(now)
        self.ticks += 1
        snap = self._make_snapshot()
        with self._lock:
            self._snapshot = snap

    # ------------------------------------------------------------------ actions
    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` in the station thread between two ticks and return its result."""
        if self._thread is None or not self._thread.is_alive():
            return fn()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._actions.put((fn, fut))
        return fut.result(timeout)

    def action(self, name: str, /, **args: Any) -> dict[str, Any]:
        """One ``sim`` API action by name; raises :class:`SimActionError` on bad input."""
        handlers: dict[str, Callable[..., dict[str, Any]]] = {
            "plug": self.plug,
            "unplug": self.unplug,
            "set_soc": self.set_soc,
            "ev": self.ev,
            "fault": self.fault,
            "clear_fault": self.clear_fault,
            "status": lambda: self.snapshot(),
        }
        if name not in handlers:
            raise SimActionError(
                "unknown_command", f"unknown sim action {name!r}; actions: {', '.join(handlers)}"
            )
        try:
            return handlers[name](**args)
        except TypeError as exc:
            raise SimActionError("invalid_argument", f"sim {name}: {exc}") from None

    def _chipset(self, connector: Any) -> ChipsetModel:
        if not isinstance(connector, str) or connector not in self.plant.chipsets:
            raise SimActionError(
                "invalid_argument",
                f"unknown connector {connector!r}; connectors: {', '.join(self.plant.chipsets)}",
            )
        return self.plant.chipsets[connector]

    def _module(self, module: Any) -> ModuleModel:
        if (
            isinstance(module, bool)
            or not isinstance(module, int)
            or module not in self.plant.modules
        ):
            raise SimActionError(
                "invalid_argument",
                f"unknown module {module!r}; modules: {', '.join(map(str, self.plant.modules))}",
            )
        return self.plant.modules[module]

    def plug(self, connector: str, vehicle: str = "bpt", **params: Any) -> dict[str, Any]:
        ch = self._chipset(connector)
        if not isinstance(vehicle, str):
            raise SimActionError("invalid_argument", "vehicle must be a preset name")
        try:
            spec = vehicle_spec(vehicle, **params)
        except ValueError as exc:
            raise SimActionError("invalid_argument", str(exc)) from None
        if ch.vehicle is not None:
            raise SimActionError("wrong_state", f"connector {connector!r} already has a vehicle")

        def apply() -> dict[str, Any]:
            v = Vehicle(spec)
            self.plant.plug(connector, v)
            log.info("sim_vehicle_plugged", connector=connector, vehicle=spec.name, soc=spec.soc)
            return {"connector": connector, "vehicle": v.snapshot()}

        return self.call(apply)

    def unplug(self, connector: str) -> dict[str, Any]:
        self._chipset(connector)

        def apply() -> dict[str, Any]:
            v = self.plant.unplug(connector)
            log.info("sim_vehicle_unplugged", connector=connector)
            return {"connector": connector, "vehicle": v.snapshot() if v else None}

        return self.call(apply)

    def set_soc(self, connector: str, soc: float) -> dict[str, Any]:
        ch = self._chipset(connector)
        if isinstance(soc, bool) or not isinstance(soc, int | float) or not 0.0 <= soc <= 1.0:
            raise SimActionError("out_of_range", "soc must be a number within 0..1")
        if ch.vehicle is None:
            raise SimActionError("wrong_state", f"no vehicle at {connector!r}")

        def apply() -> dict[str, Any]:
            assert ch.vehicle is not None
            ch.vehicle.soc = float(soc)
            return {"connector": connector, "soc": ch.vehicle.soc}

        return self.call(apply)

    def ev(
        self,
        connector: str,
        cp: str | None = None,
        contactors: bool | None = None,
        stop: bool | None = None,
    ) -> dict[str, Any]:
        """Drive the vehicle side: the CP state it presents, its own contactors, and whether
        the driver wants charging to stop (``stop``, read by the virtual EVCC)."""
        ch = self._chipset(connector)
        if cp is not None and cp not in ("B", "C", "D"):
            raise SimActionError("invalid_argument", "cp must be 'B', 'C' or 'D'")
        if contactors is not None and not isinstance(contactors, bool):
            raise SimActionError("invalid_argument", "contactors must be true or false")
        if stop is not None and not isinstance(stop, bool):
            raise SimActionError("invalid_argument", "stop must be true or false")
        if ch.vehicle is None:
            raise SimActionError("wrong_state", f"no vehicle at {connector!r}")

        def apply() -> dict[str, Any]:
            assert ch.vehicle is not None
            if cp is not None:
                ch.vehicle.cp = cp
            if contactors is not None:
                ch.vehicle.contactors_closed = contactors
            if stop is not None:
                ch.vehicle.wants_stop = stop
            return {"connector": connector, "vehicle": ch.vehicle.snapshot()}

        return self.call(apply)

    def fault(
        self,
        kind: str,
        module: int | None = None,
        connector: str | None = None,
        temp_c: float = 85.0,
        insulation_ohm: float = 50e3,
        contactor: str = "dc_plus",
    ) -> dict[str, Any]:
        """Inject a fault (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise SimActionError(
                "invalid_argument", f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}"
            )
        if kind.startswith("module_"):
            mm = self._module(module)
            n = mm.n
            if kind == "module_heartbeat_loss":

                def apply() -> None:
                    self.nodes[f"dcdc.{n}"].set_silent(True)
                    self.nodes[f"afe.{n}"].set_silent(True)
                    mm.reset()  # a dead module delivers nothing
            elif kind == "module_overtemp":
                if (
                    isinstance(temp_c, bool)
                    or not isinstance(temp_c, int | float)
                    or not -40 <= temp_c <= 200
                ):
                    raise SimActionError("out_of_range", "temp_c must be within -40..200")

                def apply() -> None:
                    mm.forced_temperature_c = float(temp_c)
            else:

                def apply() -> None:
                    mm.set_hardware_fault(True)
        elif kind == "bus_off":

            def apply() -> None:
                self._bus.send(
                    can.Message(
                        arbitration_id=CAN_ERR_FLAG_BUSOFF,
                        is_error_frame=True,
                        is_extended_id=False,
                        data=bytes(8),
                    )
                )
        else:
            targets = (
                [self._chipset(connector)]
                if connector is not None or kind != "estop"
                else list(self.plant.chipsets.values())
            )
            if kind == "insulation_fault" and (
                isinstance(insulation_ohm, bool)
                or not isinstance(insulation_ohm, int | float)
                or insulation_ohm < 0
            ):
                raise SimActionError("out_of_range", "insulation_ohm must be >= 0")
            if kind == "contactor_weld" and contactor not in CONTACTOR_NAMES:
                raise SimActionError(
                    "invalid_argument", f"contactor must be one of {', '.join(CONTACTOR_NAMES)}"
                )

            def apply() -> None:
                for ch in targets:
                    if kind == "insulation_fault":
                        ch.insulation_ohm = float(insulation_ohm)
                    elif kind == "estop":
                        ch.estop = True
                    elif kind == "cp_short":
                        ch.cp_short = True
                    elif kind == "contactor_weld":
                        ch.welded |= CONTACTOR_NAMES[contactor]

        self.call(apply)
        log.info("sim_fault_injected", kind=kind, module=module, connector=connector)
        return {"kind": kind, "module": module, "connector": connector}

    def clear_fault(
        self, kind: str | None = None, module: int | None = None, connector: str | None = None
    ) -> dict[str, Any]:
        """Remove injected fault conditions (all of them when no kind is given)."""
        if kind is not None and kind not in FAULT_KINDS:
            raise SimActionError("invalid_argument", f"unknown fault kind {kind!r}")
        mods = [self._module(module)] if module is not None else list(self.plant.modules.values())
        chips = (
            [self._chipset(connector)]
            if connector is not None
            else list(self.plant.chipsets.values())
        )

        def apply() -> None:
            for mm in mods:
                if kind in (None, "module_heartbeat_loss"):
                    self.nodes[f"dcdc.{mm.n}"].set_silent(False)
                    self.nodes[f"afe.{mm.n}"].set_silent(False)
                if kind in (None, "module_overtemp"):
                    mm.forced_temperature_c = None
                    mm.temperature_c = self.config.sim.ambient_c
                if kind in (None, "module_hardware"):
                    mm.hardware_fault = False
            for ch in chips:
                if kind in (None, "insulation_fault"):
                    ch.insulation_ohm = 10e6
                if kind in (None, "estop"):
                    ch.estop = False
                if kind in (None, "cp_short"):
                    ch.cp_short = False
                if kind in (None, "contactor_weld"):
                    ch.welded = 0

        self.call(apply)
        log.info("sim_fault_cleared", kind=kind, module=module, connector=connector)
        return {"kind": kind, "module": module, "connector": connector}

    # ------------------------------------------------------------------ observation
    def snapshot(self) -> dict[str, Any]:
        """A consistent picture of the physics (taken after the last tick)."""
        with self._lock:
            return dict(self._snapshot) if self._snapshot else self._make_snapshot()

    def _make_snapshot(self) -> dict[str, Any]:
        p = self.plant
        return {
            "t": p.now,
            "connectors": {
                name: {
                    "cp": "ABCDEF"[ch.cp_state],
                    "contactor_feedback": ch.feedback,
                    "outputs_closed": ch.outputs_closed,
                    "safety_state": ch.safety_state,
                    "faults": ch.faults,
                    "imd_state": ch.imd_state,
                    "inlet_voltage_v": round(ch.inlet_voltage_v, 3),
                    "current_a": round(p.circuits[name].current_a, 4),
                    "modules": list(p.circuits[name].modules),
                    "series": p.circuits[name].series,
                    "energy_to_vehicle_wh": round(p.circuits[name].energy_to_vehicle_wh, 4),
                    "energy_from_vehicle_wh": round(p.circuits[name].energy_from_vehicle_wh, 4),
                    "vehicle": ch.vehicle.snapshot() if ch.vehicle else None,
                }
                for name, ch in p.chipsets.items()
            },
            "modules": {
                str(n): {
                    "dcdc_state": m.dcdc_state,
                    "afe_state": m.afe_state,
                    "voltage_v": round(m.voltage_v, 3),
                    "current_a": round(m.current_a, 4),
                    "ac_power_w": round(m.ac_power_w, 2),
                    "reactive_power_var": round(m.reactive_power_var, 2),
                    "temperature_c": round(m.temperature_c, 2),
                    "derating": round(m.derating(), 4),
                    "dc_fault": m.dc_fault,
                    "ac_fault": m.ac_fault,
                    "silent": self.nodes[f"dcdc.{n}"].silent,
                }
                for n, m in p.modules.items()
            },
        }


def contactor_bits(modules: list[int], series: bool = False, outputs: bool = False) -> int:
    """Chipset contactor command for routing ``modules`` (and closing the outputs)."""
    bits = module_bits(modules)
    if series:
        bits |= SERIES
    if outputs:
        bits |= DC_PLUS | DC_MINUS
    return bits
