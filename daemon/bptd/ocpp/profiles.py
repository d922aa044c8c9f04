"""Charging profiles: the version-independent model, checks, and compositing as a pure
function of time.

Every OCPP version's profile is parsed into :class:`Profile` (times as UNIX seconds, limits
as magnitudes, the 2.1 V2X fields kept), stored, and composited per EVSE at an instant with
:func:`effective`, over a window with :func:`composite`; :func:`next_change` says when the
result may change next, so the frontend re-applies limits exactly at period boundaries.

Rules (OCPP 1.6 3.13 / 2.0.1 K01, K08; 2.1 Q):

- a profile applies at ``t`` when ``t`` is inside ``validFrom`` / ``validTo``, inside its
  schedule (start .. start + duration) and at or after its first period;
- per purpose, the applicable profile with the highest stack level prevails (a
  connector-specific TxDefaultProfile wins a tie with the station-wide one);
- the transaction level is the prevailing TxProfile of the running transaction, else the
  prevailing TxDefaultProfile; the station level is the prevailing station maximum
  (ChargePointMaxProfile / ChargingStationMaxProfile), shared equally over the EVSEs that
  run a transaction;
- limits are the minimum of both levels, per unit (W and A kept apart: W caps the DC power,
  A the AC current per phase); ``setpoint`` and ``operationMode`` come from the
  transaction level only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

#: internal purpose names (one per meaning, whatever the version calls it)
STATION_MAX = "StationMax"
TX_DEFAULT = "TxDefault"
TX = "Tx"

PURPOSES = {
    "ChargePointMaxProfile": STATION_MAX,  # 1.6
    "ChargingStationMaxProfile": STATION_MAX,  # 2.x
    "TxDefaultProfile": TX_DEFAULT,
    "TxProfile": TX,
}
PURPOSE_NAMES_16 = {
    STATION_MAX: "ChargePointMaxProfile",
    TX_DEFAULT: "TxDefaultProfile",
    TX: "TxProfile",
}
PURPOSE_NAMES_2X = {
    STATION_MAX: "ChargingStationMaxProfile",
    TX_DEFAULT: "TxDefaultProfile",
    TX: "TxProfile",
}

KINDS = ("Absolute", "Recurring", "Relative", "Dynamic")
RECURRENCY_S = {"Daily": 86400.0, "Weekly": 7 * 86400.0}

CHARGING_ONLY = "ChargingOnly"
#: OCPP 2.1 operation modes bptd implements (the others are refused with a reason)
SUPPORTED_MODES = ("ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "Idle")


class ProfileError(ValueError):
    """A profile the station cannot honour: ``reason`` is the OCPP reasonCode."""

    def __init__(self, reason: str, info: str) -> None:
        super().__init__(info)
        self.reason = reason
        self.info = info


def parse_time(value: Any) -> float | None:
    """ISO 8601 (``Z`` or an offset) -> UNIX seconds; None stays None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(t: float) -> str:
    """UNIX seconds -> ISO 8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)  # 1.6 gives decimal.Decimal
    if not math.isfinite(x):
        raise ProfileError("InvalidValue", f"{value!r} is not a finite number")
    return x


@dataclass(frozen=True)
class Period:
    """One schedule period: ``start`` s after the schedule start, values in the profile's
    unit. ``limit`` / ``discharge_limit`` are magnitudes (>= 0), ``setpoint`` is signed
    (+ charging), ``mode`` the 2.1 operation mode (None: ChargingOnly)."""

    start: int
    limit: float | None = None
    discharge_limit: float | None = None
    setpoint: float | None = None
    mode: str | None = None
    number_phases: int | None = None


@dataclass(frozen=True)
class Profile:
    id: int
    evse: int  # 0: the whole station
    stack_level: int
    purpose: str  # STATION_MAX / TX_DEFAULT / TX
    kind: str
    unit: str  # "W" or "A"
    periods: tuple[Period, ...]
    installed_at: float
    start: float | None = None  # startSchedule
    duration: float | None = None
    recurrency: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    transaction_id: str | None = None  # the frontend's own id of the transaction (TxProfile)
    schedule_id: int | None = None  # 2.x chargingSchedule.id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        data = dict(d)
        data["periods"] = tuple(Period(**p) for p in data.get("periods", ()))
        return cls(**data)

    @property
    def dynamic(self) -> bool:
        return self.kind == "Dynamic"


@dataclass(frozen=True)
class TxContext:
    """The running transaction of an EVSE (for TxProfiles and Relative schedules)."""

    transaction_id: str | None = None
    start: float | None = None


@dataclass(frozen=True)
class Effective:
    """What the profiles say for one EVSE at one instant. Limits are magnitudes; None: no
    limit from the profiles. ``setpoint_*`` is signed. ``mode`` is the transaction level's
    operation mode."""

    charge_w: float | None = None
    charge_a: float | None = None
    discharge_w: float | None = None
    discharge_a: float | None = None
    setpoint_w: float | None = None
    setpoint_a: float | None = None
    mode: str = CHARGING_ONLY
    tx_profile: int | None = None
    station_profile: int | None = None
    profiles: tuple[int, ...] = field(default=(), compare=False)

    def charge_limit(self, unit: str, watts_per_amp: float) -> float | None:
        """The charge limit in one unit (W or A), converting the other."""
        return _in_unit(self.charge_w, self.charge_a, unit, watts_per_amp)

    def discharge_limit(self, unit: str, watts_per_amp: float) -> float | None:
        return _in_unit(self.discharge_w, self.discharge_a, unit, watts_per_amp)

    def setpoint(self, unit: str, watts_per_amp: float) -> float | None:
        if unit == "W":
            if self.setpoint_w is not None:
                return self.setpoint_w
            return None if self.setpoint_a is None else self.setpoint_a * watts_per_amp
        if self.setpoint_a is not None:
            return self.setpoint_a
        return None if self.setpoint_w is None else self.setpoint_w / watts_per_amp


def _in_unit(w: float | None, a: float | None, unit: str, watts_per_amp: float) -> float | None:
    values = []
    if w is not None:
        values.append(w if unit == "W" else w / watts_per_amp)
    if a is not None:
        values.append(a if unit == "A" else a * watts_per_amp)
    return min(values) if values else None


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


# ---------------------------------------------------------------------------- parsing
def _schedule_fields(schedule: Mapping[str, Any]) -> dict[str, Any]:
    unit = str(schedule.get("charging_rate_unit", ""))
    unit = {"W": "W", "A": "A", "w": "W", "a": "A"}.get(unit, unit)
    if unit not in ("W", "A"):
        raise ProfileError("UnsupportedRateUnit", f"charging rate unit {unit!r} is not W or A")
    duration = schedule.get("duration")
    return {
        "unit": unit,
        "start": parse_time(schedule.get("start_schedule")),
        "duration": None if duration is None else float(duration),
        "schedule_id": schedule.get("id"),
    }


def _period(raw: Mapping[str, Any], v2x: bool) -> Period:
    limit = _num(raw.get("limit"))
    if limit is not None and limit < 0:
        raise ProfileError("InvalidValue", f"limit {limit} is negative")
    discharge = _num(raw.get("discharge_limit")) if v2x else None
    if discharge is not None and discharge > 0:
        raise ProfileError("InvalidValue", f"dischargeLimit {discharge} must be <= 0")
    mode = raw.get("operation_mode") if v2x else None
    if mode is not None and mode not in SUPPORTED_MODES:
        raise ProfileError("UnsupportedParam", f"operationMode {mode} is not supported by bptd")
    phases = raw.get("number_phases")
    return Period(
        start=int(raw["start_period"]),
        limit=limit,
        discharge_limit=None if discharge is None else abs(discharge),
        setpoint=_num(raw.get("setpoint")) if v2x else None,
        mode=mode,
        number_phases=None if phases is None else int(phases),
    )


def _build(
    *,
    pid: int,
    evse: int,
    raw: Mapping[str, Any],
    schedule: Mapping[str, Any],
    transaction_id: str | None,
    now: float,
    v2x: bool,
) -> Profile:
    purpose_name = str(raw.get("charging_profile_purpose"))
    purpose = PURPOSES.get(purpose_name)
    if purpose is None:
        raise ProfileError("UnsupportedParam", f"purpose {purpose_name} is not supported")
    kind = str(raw.get("charging_profile_kind"))
    if kind not in KINDS or (kind == "Dynamic" and not v2x):
        raise ProfileError("UnsupportedParam", f"profile kind {kind} is not supported")
    periods_raw = schedule.get("charging_schedule_period") or []
    if not periods_raw:
        raise ProfileError("InvalidSchedule", "a schedule needs at least one period")
    periods = tuple(_period(p, v2x) for p in periods_raw)
    starts = [p.start for p in periods]
    if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        raise ProfileError("InvalidSchedule", "periods must start at 0 and strictly increase")
    if not v2x and any(p.limit is None for p in periods):
        raise ProfileError("InvalidSchedule", "every period needs a limit")
    recurrency = raw.get("recurrency_kind")
    fields = _schedule_fields(schedule)
    if kind == "Recurring":
        if recurrency not in RECURRENCY_S:
            raise ProfileError("InvalidSchedule", "a recurring profile needs Daily or Weekly")
        if fields["start"] is None:
            raise ProfileError("InvalidSchedule", "a recurring profile needs startSchedule")
    if kind == "Dynamic" and len(periods) != 1:
        raise ProfileError("InvalidSchedule", "a dynamic profile has exactly one period")
    if any(p.mode not in (None, CHARGING_ONLY) for p in periods) and purpose == STATION_MAX:
        raise ProfileError(
            "InvalidSchedule", "operation modes other than ChargingOnly need a transaction purpose"
        )
    valid_from = parse_time(raw.get("valid_from"))
    valid_to = parse_time(raw.get("valid_to"))
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise ProfileError("InvalidSchedule", "validTo is not after validFrom")
    return Profile(
        id=int(pid),
        evse=int(evse),
        stack_level=int(raw.get("stack_level", 0)),
        purpose=purpose,
        kind=kind,
        periods=periods,
        installed_at=now,
        recurrency=recurrency if kind == "Recurring" else None,
        valid_from=valid_from,
        valid_to=valid_to,
        transaction_id=transaction_id,
        **fields,
    )


def from_v16(
    connector_id: int, raw: Mapping[str, Any], transaction_id: str | None, now: float
) -> Profile:
    """A 1.6 ``csChargingProfiles`` (snake_case, as the ``ocpp`` package hands it)."""
    return _build(
        pid=raw["charging_profile_id"],
        evse=connector_id,
        raw=raw,
        schedule=raw.get("charging_schedule") or {},
        transaction_id=transaction_id,
        now=now,
        v2x=False,
    )


def from_v2(
    evse_id: int, raw: Mapping[str, Any], transaction_id: str | None, now: float, v2x: bool
) -> Profile:
    """A 2.0.1 / 2.1 ``chargingProfile``: the first of its schedules is used (the others
    are offers for an ISO 15118 EV to choose from)."""
    schedules = raw.get("charging_schedule") or []
    if not schedules:
        raise ProfileError("InvalidSchedule", "no charging schedule")
    return _build(
        pid=raw["id"],
        evse=evse_id,
        raw=raw,
        schedule=schedules[0],
        transaction_id=transaction_id,
        now=now,
        v2x=v2x,
    )


# ---------------------------------------------------------------------------- evaluation
def schedule_start(p: Profile, t: float, tx: TxContext | None) -> float | None:
    """Where the schedule of ``p`` in force at ``t`` started (None: not determinable)."""
    if p.kind == "Relative":
        return None if tx is None or tx.start is None else tx.start
    if p.kind == "Recurring":
        assert p.start is not None
        period = RECURRENCY_S[p.recurrency or "Daily"]
        if t < p.start:
            return p.start
        return p.start + math.floor((t - p.start) / period) * period
    return p.start if p.start is not None else p.installed_at


def period_at(p: Profile, t: float, tx: TxContext | None) -> Period | None:
    """The period of ``p`` in force at ``t``, None when ``p`` does not apply then."""
    if p.valid_from is not None and t < p.valid_from:
        return None
    if p.valid_to is not None and t >= p.valid_to:
        return None
    base = schedule_start(p, t, tx)
    if base is None or t < base:
        return None
    # absolute instants, computed as _boundaries computes them (the same float rounding)
    if p.duration is not None and not p.dynamic and t >= base + p.duration:
        return None
    current = None
    for period in p.periods:
        if t >= base + period.start:
            current = period
        else:
            break
    return current


def _applies_to(p: Profile, evse: int, tx: TxContext | None) -> bool:
    if p.purpose == STATION_MAX:
        return p.evse == 0
    if p.purpose == TX:
        return (
            p.evse == evse
            and tx is not None
            and tx.transaction_id is not None
            and p.transaction_id == tx.transaction_id
        )
    return p.evse in (0, evse)  # TxDefault


def _prevailing(
    candidates: Iterable[Profile], evse: int, t: float, tx: TxContext | None
) -> tuple[Profile, Period] | None:
    best: tuple[tuple[int, int], Profile, Period] | None = None
    for p in candidates:
        period = period_at(p, t, tx)
        if period is None:
            continue
        rank = (p.stack_level, 1 if p.evse == evse else 0)
        if best is None or rank > best[0]:
            best = (rank, p, period)
    return None if best is None else (best[1], best[2])


def effective(
    profiles: Sequence[Profile],
    evse: int,
    t: float,
    tx: TxContext | None = None,
    share: float = 1.0,
) -> Effective:
    """What the profiles say for ``evse`` (0: the station's own maximum) at ``t``.

    ``share`` is this EVSE's share of the station maximum (1 / EVSEs in a transaction).
    """
    station = _prevailing((p for p in profiles if p.purpose == STATION_MAX), evse, t, tx)
    if evse == 0:
        level = None
    else:
        relevant = [p for p in profiles if _applies_to(p, evse, tx)]
        level = _prevailing((p for p in relevant if p.purpose == TX), evse, t, tx)
        if level is None:
            level = _prevailing((p for p in relevant if p.purpose == TX_DEFAULT), evse, t, tx)
    values: dict[str, float | None] = {
        "charge_w": None,
        "charge_a": None,
        "discharge_w": None,
        "discharge_a": None,
    }
    used: list[int] = []
    for found, factor in ((station, share), (level, 1.0)):
        if found is None:
            continue
        p, period = found
        used.append(p.id)
        suffix = "w" if p.unit == "W" else "a"
        if period.limit is not None:
            key = f"charge_{suffix}"
            values[key] = _min(values[key], period.limit * factor)
        if period.discharge_limit is not None:
            key = f"discharge_{suffix}"
            values[key] = _min(values[key], period.discharge_limit * factor)
    setpoint_w = setpoint_a = None
    mode = CHARGING_ONLY
    if level is not None:
        p, period = level
        mode = period.mode or CHARGING_ONLY
        if period.setpoint is not None:
            if p.unit == "W":
                setpoint_w = period.setpoint
            else:
                setpoint_a = period.setpoint
    return Effective(
        setpoint_w=setpoint_w,
        setpoint_a=setpoint_a,
        mode=mode,
        tx_profile=None if level is None else level[0].id,
        station_profile=None if station is None else station[0].id,
        profiles=tuple(used),
        **values,
    )


def _boundaries(p: Profile, t: float, tx: TxContext | None) -> list[float]:
    out = [x for x in (p.valid_from, p.valid_to) if x is not None]
    bases: list[float] = []
    base = schedule_start(p, t, tx)
    if base is not None:
        bases.append(base)
        if p.kind == "Recurring":
            bases.append(base + RECURRENCY_S[p.recurrency or "Daily"])
    for b in bases:
        out.extend(b + period.start for period in p.periods)
        if p.duration is not None and not p.dynamic:
            out.append(b + p.duration)
    return out


def next_change(profiles: Sequence[Profile], t: float, tx: TxContext | None = None) -> float | None:
    """The first instant after ``t`` at which :func:`effective` may change (None: never)."""
    later = [b for p in profiles for b in _boundaries(p, t, tx) if b > t]
    return min(later) if later else None


def composite(
    profiles: Sequence[Profile],
    evse: int,
    start: float,
    duration: float,
    tx: TxContext | None = None,
    share: float = 1.0,
) -> list[tuple[int, Effective]]:
    """The composite schedule of ``evse`` over ``[start, start + duration)``: periods as
    ``(offset_s, Effective)``, integer offsets, consecutive equal periods merged. A
    Relative profile outside a transaction is taken to start at ``start``."""
    if tx is None or tx.start is None:
        tx = TxContext(tx.transaction_id if tx else None, start)
    out: list[tuple[int, Effective]] = []
    t = start
    end = start + duration
    while t < end:
        eff = effective(profiles, evse, t, tx, share)
        offset = round(t - start)
        if not out or out[-1][1] != eff:
            out.append((offset, eff))
        nxt = next_change(profiles, t, tx)
        if nxt is None:
            break
        t = max(start + math.ceil(nxt - start), t + 1.0)
    return out


# ---------------------------------------------------------------------------- the store
@dataclass
class ProfileStore:
    """The installed profiles with the replacement rules of OCPP (same id, or same stack
    level + purpose + EVSE, replaces) and the limits of the device model."""

    profiles: list[Profile] = field(default_factory=list)
    max_stack_level: int = 8
    max_periods: int = 24
    max_profiles: int = 32

    def install(self, p: Profile) -> None:
        if not 0 <= p.stack_level <= self.max_stack_level:
            raise ProfileError(
                "InvalidStackLevel", f"stack level {p.stack_level} beyond 0..{self.max_stack_level}"
            )
        if len(p.periods) > self.max_periods:
            raise ProfileError(
                "InvalidSchedule", f"{len(p.periods)} periods, at most {self.max_periods}"
            )
        kept = [
            q
            for q in self.profiles
            if q.id != p.id
            and not (q.stack_level == p.stack_level and q.purpose == p.purpose and q.evse == p.evse)
        ]
        if len(kept) >= self.max_profiles:
            raise ProfileError("NoCapacity", f"already {len(kept)} profiles installed")
        self.profiles = [*kept, p]

    def get(self, pid: int) -> Profile | None:
        return next((p for p in self.profiles if p.id == pid), None)

    def replace_period(self, pid: int, **values: float | None) -> Profile:
        """UpdateDynamicSchedule: new values for the one period of a Dynamic profile."""
        p = self.get(pid)
        if p is None:
            raise ProfileError("UnknownProfile", f"no charging profile {pid}")
        if not p.dynamic:
            raise ProfileError("InvalidProfile", f"charging profile {pid} is not Dynamic")
        period = replace(p.periods[0], **values)
        new = replace(p, periods=(period, *p.periods[1:]))
        self.profiles = [new if q.id == pid else q for q in self.profiles]
        return new

    def clear(
        self,
        pid: int | None = None,
        evse: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> list[Profile]:
        """Remove what matches every given criterion; returns the removed profiles."""

        def match(p: Profile) -> bool:
            if pid is not None:
                return p.id == pid
            return (
                (evse is None or p.evse == evse)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        removed = [p for p in self.profiles if match(p)]
        self.profiles = [p for p in self.profiles if not match(p)]
        return removed

    def end_transaction(self, transaction_id: str) -> list[Profile]:
        """TxProfiles live as long as their transaction."""
        removed = [
            p for p in self.profiles if p.purpose == TX and p.transaction_id == transaction_id
        ]
        self.profiles = [p for p in self.profiles if p not in removed]
        return removed

    def bind(self, transaction_id: str, evse: int) -> None:
        """TxProfiles given with a remote start (no transaction yet) join the transaction."""
        self.profiles = [
            replace(p, transaction_id=transaction_id)
            if p.purpose == TX and p.transaction_id == "" and p.evse == evse
            else p
            for p in self.profiles
        ]
