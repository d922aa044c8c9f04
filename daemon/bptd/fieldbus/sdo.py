"""SDO access to one node: one lock per node, retries, readable errors.

canopen's ``SdoClient`` is not thread-safe (research/canopen.md 1.2), so every transfer to
a node holds that node's lock; different nodes run in parallel. The lock outlives bus
reconnections (it belongs to the node key, not to the canopen ``RemoteNode``).

Never call these from a canopen callback (the response needs the notifier thread) nor from
the control loop (they block): boot workers and API worker threads only.
"""

from __future__ import annotations

import threading

import can
import canopen
from canopen.objectdictionary import ODVariable
from canopen.sdo.exceptions import SdoAbortedError, SdoCommunicationError

from bptd.errors import FieldbusError
from bptd.fieldbus.errors import SdoAbortError, SdoTimeoutError


class NodeSdo:
    """Blocking SDO transfers to one ``RemoteNode`` through its node lock."""

    def __init__(
        self,
        key: str,
        node: canopen.RemoteNode,
        lock: threading.Lock,
        timeout_s: float,
        retries: int,
    ) -> None:
        self.key = key
        self.node = node
        self.lock = lock
        node.sdo.RESPONSE_TIMEOUT = timeout_s
        node.sdo.MAX_RETRIES = max(1, retries)  # canopen: 1 = one attempt, no retry
        node.sdo.PAUSE_BEFORE_SEND = 0.0

    def var(self, index: int, subindex: int) -> ODVariable:
        obj = self.node.object_dictionary[index]
        if isinstance(obj, ODVariable):
            return obj
        return obj[subindex]

    def read(self, index: int, subindex: int) -> int:
        """Upload one integer object (decoded with the EDS data type)."""
        data = self._transfer(index, subindex, None)
        assert data is not None
        return int(self.var(index, subindex).decode_raw(data))

    def write(self, index: int, subindex: int, value: int) -> None:
        """Download one integer object (encoded with the EDS data type)."""
        self._transfer(index, subindex, self.var(index, subindex).encode_raw(value))

    def _transfer(self, index: int, subindex: int, data: bytes | None) -> bytes | None:
        action = "read" if data is None else "write"
        with self.lock:
            try:
                if data is None:
                    return self.node.sdo.upload(index, subindex)
                self.node.sdo.download(index, subindex, data)
                return None
            except SdoAbortedError as exc:
                raise SdoAbortError(self.key, index, subindex, action, exc.code) from exc
            except SdoCommunicationError as exc:
                raise SdoTimeoutError(
                    self.key, index, subindex, action, f"no valid SDO response ({exc})"
                ) from exc
            except can.CanError as exc:
                raise SdoTimeoutError(
                    self.key, index, subindex, action, f"CAN send failed ({exc})"
                ) from exc
            except Exception as exc:  # e.g. the notifier died: Network.check() re-raises
                raise FieldbusError(
                    f"{self.key} 0x{index:04X}:{subindex:02X} {action} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
