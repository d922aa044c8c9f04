"""A minimal CANopen peer that drives the virtual station's devices directly.

Not the daemon: no sessions, no limits. It exists so the simulator can be shown and tested
on its own (``bptd demo`` before a daemon runs it, and the simulator's tests). It produces
the supervisor heartbeat, starts every node, refreshes its RPDOs every 100 ms and keeps
the latest TPDO values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import can
import canopen
from canopen.pdo.base import PdoMap

from bptd.config import Config
from bptd.profile import Profile, load_profile

REFRESH_S = 0.1


class SimProbe:
    """RemoteNodes for every device of ``config`` on ``bus``."""

    def __init__(
        self,
        config: Config,
        bus: can.BusABC,
        profile: Profile | None = None,
        heartbeat_s: float = 0.1,
    ) -> None:
        self.config = config
        self.profile = profile or load_profile(config.station.profile or None)
        self.network = canopen.Network(bus)
        self.nodes: dict[str, canopen.RemoteNode] = {}
        self.kinds: dict[str, str] = {}
        self._changed = threading.Condition()
        self._heartbeat_s = heartbeat_s
        for c in config.connectors:
            self._add(f"chipset.{c.name}", c.chipset_node_id, "chipset")
        for m in config.modules:
            self._add(f"dcdc.{m.n}", m.dcdc_node_id, "dcdc")
            self._add(f"afe.{m.n}", m.afe_node_id, "afe")

    def _add(self, key: str, node_id: int, kind: str) -> None:
        node = canopen.RemoteNode(node_id, self.profile[kind].object_dictionary(node_id))
        self.network.add_node(node)
        self.nodes[key] = node
        self.kinds[key] = kind

    def connect(self) -> SimProbe:
        self.network.connect()
        self._hb_task = self.network.send_periodic(
            0x700 + self.config.can.supervisor_node_id, [5], self._heartbeat_s
        )
        return self

    def stop_heartbeat(self) -> None:
        """Fall silent as a crashed supervisor would (RPDO refresh stops too)."""
        self._hb_task.stop()
        for node in self.nodes.values():
            for m in node.rpdo.map.values():
                if m._task is not None:
                    m.stop()

    def start(self, keys: list[str] | None = None) -> None:
        """Take PDO layouts from the EDS, start the RPDO refresh and set nodes OPERATIONAL."""
        for key in keys or list(self.nodes):
            node = self.nodes[key]
            node.tpdo.read(from_od=True)
            node.rpdo.read(from_od=True)
            for m in node.tpdo.map.values():
                if m.enabled:
                    m.add_callback(self._on_tpdo)
            for m in node.rpdo.map.values():
                if m.enabled and m.map:
                    for var in m.map:
                        var.raw = var.od.default or 0  # start from the EDS defaults
                    m.start(REFRESH_S)
            node.nmt.state = "OPERATIONAL"

    def _on_tpdo(self, pdo: PdoMap) -> None:
        with self._changed:
            self._changed.notify_all()

    def _var(self, key: str, name: str, maps: Any) -> Any:
        ref = self.profile[self.kinds[key]][name]
        for m in maps.values():
            for var in m.map:
                if var.index == ref.index and var.subindex == ref.subindex:
                    return m, var
        raise KeyError(f"{key}.{name} is not in a PDO")

    def set(self, key: str, **values: float) -> None:
        """Write command objects (SI units) and send the changed RPDOs at once."""
        touched = []
        for name, value in values.items():
            ref = self.profile[self.kinds[key]][name]
            m, var = self._var(key, name, self.nodes[key].rpdo.map)
            var.raw = ref.to_raw(value)
            if m not in touched:
                touched.append(m)
        for m in touched:
            m.update()
            m.transmit()

    def get(self, key: str, name: str) -> float:
        """Latest value of a status object from its TPDO (SI units)."""
        ref = self.profile[self.kinds[key]][name]
        _, var = self._var(key, name, self.nodes[key].tpdo.map)
        return ref.to_si(var.raw)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, re-checked on every TPDO received."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        self.network.disconnect()

    def __enter__(self) -> SimProbe:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
