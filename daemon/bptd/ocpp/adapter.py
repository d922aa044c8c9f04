"""What every version adapter provides, and the charge-point base every version's
``ocpp`` ChargePoint class is mixed with."""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError

from bptd.ocpp.mapping import Reading

if TYPE_CHECKING:
    from bptd.ocpp.app import Conn, Frontend
    from bptd.ocpp.queue import Item, OfflineQueue

log = structlog.get_logger(__name__)

Message = tuple[str, dict[str, Any]]  # (action, snake_case payload)


@dataclass
class Transaction:
    """A transaction of this frontend (persisted in the state file)."""

    tx_id: str  # 2.x transactionId; in 1.6 the frontend's own reference
    connector: str
    evse: int
    started: float  # UNIX s
    id_tag: str | None = None
    id_type: str = "Central"
    remote_start_id: int | None = None
    remote: bool = False  # started by the CSMS through this frontend: mode and setpoint are ours
    session_id: str | None = None
    meter_start_wh: float = 0.0
    seq: int = 0  # 2.x: the next seqNo
    charging_state: str | None = None
    stop_reason: str | None = None
    mode: str | None = None  # 2.1: the operation mode last reported
    ev_needs_sent: bool = False
    last_sample: float = field(default=0.0, compare=False)  # monotonic, not persisted

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("last_sample")
        return d

    def next_seq(self) -> int:
        n = self.seq
        self.seq += 1
        return n


@dataclass(frozen=True)
class Identity:
    vendor: str
    model: str
    serial: str
    firmware: str


class Adapter:
    """Builds one version's messages; the Frontend decides when."""

    version = ""
    subprotocol = ""

    def __init__(self, fe: Frontend) -> None:
        self.fe = fe

    def charge_point(self, station_id: str, ws: Any, response_timeout: float) -> Any:
        raise NotImplementedError

    def boot(self, identity: Identity, reason: str) -> Message:
        raise NotImplementedError

    def status(self, conn: Conn, status: str) -> Message:
        raise NotImplementedError

    def tx_started(self, tx: Transaction, readings: list[Reading], trigger: str) -> list[Message]:
        raise NotImplementedError

    def tx_updated(
        self, tx: Transaction, readings: list[Reading], trigger: str, context: str
    ) -> list[Message]:
        raise NotImplementedError

    def tx_charging_state(self, tx: Transaction, state: str) -> list[Message]:
        return []

    def tx_mode(self, tx: Transaction, mode: str) -> list[Message]:
        return []

    def tx_ended(self, tx: Transaction, readings: list[Reading], reason: str) -> list[Message]:
        raise NotImplementedError

    def meter_values(self, conn: Conn, readings: list[Reading], context: str) -> Message:
        raise NotImplementedError

    def resolve(self, item: Item, queue: OfflineQueue) -> dict[str, Any]:
        return item.payload

    def acked(self, item: Item, result: Any) -> tuple[str, Any] | None:
        return None

    def ev_needs(self, conn: Conn, snap: dict[str, Any]) -> Message | None:
        return None


class StationMixin:
    """Mixed before an ``ocpp`` ChargePoint class: every CALL gets an answer (also in 2.1,
    whose base class stays silent on an action without handler), and work that must follow
    the answer (the triggered message, the reset, the start of a remote start) is deferred
    until the answer has been sent."""

    actions: frozenset[str] = frozenset()  # every action of the version

    def _setup(self, fe: Frontend) -> None:
        self.fe = fe
        self._later: list[Callable[[], Coroutine[Any, Any, Any]]] = []

    def later(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``fn()`` once the answer to the present CALL has been sent."""
        self._later.append(fn)

    async def _handle_call(self, msg: Any) -> Any:
        self._later = []
        handlers = self.route_map.get(msg.action)  # type: ignore[attr-defined]
        if not handlers or "_on_action" not in handlers:
            if msg.action in self.actions:
                error: Exception = OcppNotImplemented(
                    details={"cause": f"{msg.action} is not supported"}
                )
            else:
                error = NotSupportedError(details={"cause": f"{msg.action} is not an OCPP action"})
            log.info("ocpp_call_not_supported", action=msg.action, answer=type(error).__name__)
            await self._send(msg.create_call_error(error).to_json())  # type: ignore[attr-defined]
            return None
        result = await super()._handle_call(msg)  # type: ignore[misc]
        later, self._later = self._later, []
        for fn in later:
            self.fe.spawn(fn(), name=f"after {msg.action}")
        return result


def actions_of(enum_cls: type[enum.Enum]) -> frozenset[str]:
    return frozenset(str(a.value) for a in enum_cls)
