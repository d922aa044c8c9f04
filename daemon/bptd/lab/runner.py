"""Run a test pattern on a live session through the API, recording everything it sees.

:func:`run_pattern` refuses to start unless the connector is in ``energy_transfer``,
holds every level of the plan for its interval (times from one start, so they do not
drift), writes each step's sync marker to the recording (a ``lab.step`` row joined with
the daemon's ``command_applied`` event) and stops at the first refusal or when the
session leaves ``energy_transfer``. Whatever ends it (the plan done, a refusal,
Ctrl-C), the setpoint goes back to 0 unless the last level already was 0.

:func:`run_and_report` adds the rest of ``bptctl pattern``: the default range from the
connector's limits, the recording file, the analysis and the report.
"""

from __future__ import annotations

import datetime
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bptd.api.client import ApiError, Client, Subscriber
from bptd.api.telemetry import utc_timestamp
from bptd.lab import metrics, patterns, report
from bptd.lab.record import RecordWriter, load

ENERGY_TRANSFER = "energy_transfer"
#: seconds of recording before the first step (the baseline of its "before")
LEAD_S = 1.0
PROGRESS_EVERY_S = 0.25
#: keys of ``bptctl pattern`` that are the analysis's, not the pattern's
ANALYSIS_KEYS = {"steady": "steady", "band": "band_fraction", "band_min_w": "band_min_w",
                 "efficiency_min_w": "efficiency_min_w"}  # fmt: skip
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_DAEMON, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class PatternError(Exception):
    """The pattern cannot start or cannot go on; ``exit_code`` says which way."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Progress:
    step: int  # 1-based
    steps: int
    elapsed_s: float
    setpoint_w: float
    measured_w: float | None
    total_s: float


@dataclass
class RunOutcome:
    steps_done: int = 0
    interrupted: bool = False
    error: str | None = None
    exit_code: int = EXIT_OK
    notices: list[str] = field(default_factory=list)
    restored: bool = False


@dataclass
class _Pending:
    step: patterns.Step
    mono: float
    wall: str
    reply: Any = None


def _same(a: Any, b: float) -> bool:
    return isinstance(a, int | float) and not isinstance(a, bool) and abs(a - b) <= 1e-6


class PatternRun:
    """One run of a plan on one connector (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        sub: Subscriber,
        connector: str,
        plan: list[patterns.Step],
        interval_s: float,
        writer: RecordWriter,
        progress: Callable[[Progress], None] | None = None,
        notice: Callable[[str], None] | None = None,
        lead_s: float = LEAD_S,
        telemetry_timeout_s: float = 5.0,
    ) -> None:
        self.client = client
        self.sub = sub
        self.connector = connector
        if not plan:
            raise ValueError("an empty plan")
        self.plan = plan
        self.interval_s = interval_s
        self.writer = writer
        self.progress = progress
        self.notice_cb = notice
        self.lead_s = lead_s
        self.telemetry_timeout_s = telemetry_timeout_s
        self.outcome = RunOutcome()
        self.measured_w: float | None = None
        self.state: str | None = None
        self._pending: list[_Pending] = []
        self._last_setpoint: float | None = None  # the last one sent (or being sent)
        self._confirmed: float | None = None  # the last one the daemon replied to
        self._in_flight = False
        self._own: list[float] = []  # setpoints sent outside the plan (the restore)
        self._last_message = time.monotonic()

    # ------------------------------------------------------------------ messages
    def notice(self, text: str) -> None:
        self.outcome.notices.append(text)
        if self.notice_cb is not None:
            self.notice_cb(text)

    def _take(self, timeout_s: float) -> None:
        """Record the messages that come within ``timeout_s`` (at least one poll)."""
        end = time.monotonic() + max(0.0, timeout_s)
        while True:
            message = self.sub.recv(max(0.0, end - time.monotonic()))
            now = time.monotonic()
            if message is None:
                if now - self._last_message > self.telemetry_timeout_s:
                    raise PatternError(
                        f"no telemetry for {self.telemetry_timeout_s:g} s: is the daemon "
                        "running, and --telemetry its endpoint?", EXIT_NO_DAEMON,
                    )  # fmt: skip
                return
            self._last_message = now
            topic, payload = message
            self.writer.write(topic, payload)
            if topic == f"connector.{self.connector}":
                self.state = payload.get("state")
                power = payload.get("power_w")
                self.measured_w = power if isinstance(power, int | float) else None
                if self.state != ENERGY_TRANSFER and self._last_setpoint is not None:
                    fault = payload.get("fault")
                    raise PatternError(
                        f"connector {self.connector} left {ENERGY_TRANSFER} (now "
                        f"{self.state}{', ' + str(fault) if fault else ''})"
                    )
            elif topic == "event" and payload.get("kind") == "command_applied":
                self._marker(payload)
            if time.monotonic() >= end:
                return

    def _marker(self, ev: Mapping[str, Any]) -> None:
        if ev.get("command") != "setpoint" or ev.get("connector") != self.connector:
            return
        args = ev.get("args") or {}
        for i, p in enumerate(self._pending):
            if _same(args.get("power_w"), p.step.setpoint_w):
                del self._pending[i]
                self._step_row(p, ev.get("received_mono"), ev.get("sent_mono"), "daemon")
                return
        for i, w in enumerate(self._own):
            if _same(args.get("power_w"), w):
                del self._own[i]
                return
        self.notice(
            f"a setpoint the pattern did not send ({args.get('power_w')} W): another client "
            f"is driving {self.connector}, the results may be wrong"
        )

    def _step_row(self, p: _Pending, received: Any, sent: Any, sync: str) -> None:
        self.writer.row({
            "t": p.wall, "mono": p.mono, "topic": "lab.step", "name": self.connector,
            "step": p.step.index, "setpoint_w": p.step.setpoint_w, "command": "setpoint",
            "received_mono": received, "sent_mono": sent, "sync": sync, "args": p.reply,
        })  # fmt: skip

    def _flush_pending(self) -> None:
        """Steps whose marker never came: the client's clock is all there is."""
        for p in self._pending:
            self._step_row(p, None, None, "client")
            self.notice(
                f"step {p.step.index}: no command_applied event from the daemon; timed "
                "with this client's clock (valid on the daemon's host only)"
            )
        self._pending.clear()

    # ------------------------------------------------------------------ run
    def wait_telemetry(self) -> None:
        """Until the connector's telemetry flows (the subscription is live)."""
        deadline = time.monotonic() + self.telemetry_timeout_s
        self._last_message = time.monotonic()
        while self.state is None:
            if time.monotonic() >= deadline:
                raise PatternError(
                    f"no telemetry of connector {self.connector} within "
                    f"{self.telemetry_timeout_s:g} s: is --telemetry the daemon's endpoint?",
                    EXIT_NO_DAEMON,
                )
            self._take(min(0.2, max(0.0, deadline - time.monotonic())))

    def setpoint(self, power_w: float) -> Any:
        self._last_setpoint = power_w
        self._in_flight = True  # until the reply: the daemon may or may not have it
        reply = self.client.call("setpoint", connector=self.connector, power_w=power_w)
        self._in_flight = False
        self._confirmed = power_w
        return reply

    def run(self) -> RunOutcome:
        """The whole plan; never raises for a refusal or Ctrl-C (see ``outcome``)."""
        out = self.outcome
        try:
            self.wait_telemetry()
            if self.state != ENERGY_TRANSFER:
                raise PatternError(_not_live(self.connector, self.state))
            self._take(self.lead_s)
            start = time.monotonic()
            interval = self.interval_s
            total = self.plan[-1].at_s + interval
            for step in self.plan:
                due = start + step.at_s
                self._take(due - time.monotonic())
                p = _Pending(step, time.monotonic(), utc_timestamp())
                self._pending.append(p)
                try:
                    p.reply = self.setpoint(step.setpoint_w)
                except ApiError as exc:
                    self._pending.remove(p)
                    raise PatternError(f"step {step.index}: setpoint refused: {exc.code}: "
                                       f"{exc.message}") from None  # fmt: skip
                out.steps_done = step.index
                end = due + interval
                while (now := time.monotonic()) < end:
                    self._report(step, now - start, total)
                    self._take(min(PROGRESS_EVERY_S, end - now))
                self._report(step, time.monotonic() - start, total)
                # a marker later than the step is no marker: the client's clock instead
                self._flush_pending()
        except KeyboardInterrupt:
            out.interrupted = True
            out.exit_code = EXIT_INTERRUPTED
        except PatternError as exc:
            out.error = str(exc)
            out.exit_code = exc.exit_code
        except ApiError as exc:
            out.error = f"{exc.code}: {exc.message}"
            out.exit_code = EXIT_NO_DAEMON if exc.code == "timeout" else EXIT_REFUSED
        finally:
            self._restore()
        return out

    def _report(self, step: patterns.Step, elapsed: float, total: float) -> None:
        if self.progress is not None:
            self.progress(Progress(step.index, len(self.plan), elapsed, step.setpoint_w,
                                   self.measured_w, total))  # fmt: skip

    def _restore(self) -> None:
        """Setpoint 0 (Ctrl-C ignored meanwhile), unless the last one was 0 for sure."""
        settled = not self._in_flight and self._confirmed in (None, 0.0)
        if settled or self.state != ENERGY_TRANSFER:
            self._drain()
            return
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._own.append(0.0)
            self.client.call("setpoint", connector=self.connector, power_w=0.0)
            self._last_setpoint = 0.0
            self.outcome.restored = True
        except ApiError as exc:
            self.notice(f"could not put the setpoint back to 0: {exc.code}: {exc.message}")
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self._drain()

    def _drain(self) -> None:
        try:
            self._take(0.0)
        except (PatternError, KeyboardInterrupt):
            pass
        if self._pending:
            self._flush_pending()


def _not_live(connector: str, state: str | None, status: Mapping[str, Any] | None = None) -> str:
    fault = ""
    if status and status.get("fault"):
        detail = status.get("fault_detail")
        fault = f" ({status['fault']}{': ' + str(detail) if detail else ''})"
    return (
        f"connector {connector} is {state or 'unknown'}{fault}, not in {ENERGY_TRANSFER}: a "
        "pattern runs on a live session (plug, authorize, allocate, set_mode, start first)"
    )


# ---------------------------------------------------------------------- bptctl pattern


@dataclass
class PatternResult:
    outcome: RunOutcome
    params: patterns.PatternParams | None = None
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def range_from_status(status: Mapping[str, Any]) -> tuple[float, float]:
    """(min_w, max_w): the connector's discharge and charge power limits in force."""
    limits = status.get("limits") or {}
    hi = limits.get("charge_power_w")
    lo = limits.get("discharge_power_w")
    max_w = float(hi) if isinstance(hi, int | float) and math.isfinite(hi) else 0.0
    min_w = -abs(float(lo)) if isinstance(lo, int | float) and math.isfinite(lo) else 0.0
    if status.get("bidirectional") is False:
        min_w = 0.0
    return min_w, max(0.0, max_w)


def analysis_options(args: Mapping[str, Any]) -> metrics.Options:
    given = {ANALYSIS_KEYS[k]: v for k, v in args.items() if k in ANALYSIS_KEYS}
    for k, v in given.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{k} must be a number, not {v!r}")
    return metrics.Options(**given).check()


def check_args(args: Mapping[str, Any]) -> None:
    known = {"connector", *patterns.PATTERN_KEYS, *ANALYSIS_KEYS}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; pattern takes "
                         f"{', '.join(sorted(known))}")  # fmt: skip
    if not isinstance(args.get("connector"), str) or not args["connector"]:
        raise ValueError("connector=NAME is required")


def run_and_report(
    kind: str,
    args: Mapping[str, Any],
    client: Client,
    sub: Subscriber,
    out_dir: str | Path,
    progress: Callable[[Progress], None] | None = None,
    notice: Callable[[str], None] | None = None,
    lead_s: float = LEAD_S,
    telemetry_timeout_s: float = 5.0,
) -> PatternResult:
    """``bptctl pattern``: check, run, record, analyse, report. Raises ValueError for bad
    arguments (usage) and PatternError when the pattern cannot start."""
    check_args(args)
    connector = args["connector"]
    options = analysis_options(args)
    patterns.params_from(kind, args, -1.0, 1.0)  # bad parameters before the daemon is asked
    try:
        status = client.call("status", connector=connector)
    except ApiError as exc:
        code = EXIT_NO_DAEMON if exc.code == "timeout" else EXIT_REFUSED
        raise PatternError(f"{exc.code}: {exc.message}", code) from None
    if status.get("state") != ENERGY_TRANSFER:
        raise PatternError(_not_live(connector, status.get("state"), status))
    min_w, max_w = range_from_status(status)
    params = patterns.params_from(kind, args, min_w, max_w)
    plan = patterns.plan(params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    with RecordWriter(out / "recording.csv") as writer:
        run = PatternRun(client, sub, connector, plan, params.interval_s, writer, progress,
                         notice, lead_s, telemetry_timeout_s)  # fmt: skip
        outcome = run.run()
    result = PatternResult(outcome, params, out)
    meta = {
        "pattern": kind,
        "connector": connector,
        "params": asdict(params),
        "analysis": asdict(options),
        "plan": [asdict(s) for s in plan],
        "started": started,
        "steps_done": outcome.steps_done,
        "interrupted": outcome.interrupted,
        "error": outcome.error,
        "notices": outcome.notices,
        "setpoint_restored": outcome.restored,
    }
    (out / "pattern.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if outcome.steps_done:
        rec = load(out / "recording.csv")
        analysis = metrics.analyse(rec, connector, options)
        notes = [f"Pattern {kind}: " + ", ".join(f"{k}={v}" for k, v in asdict(params).items()
                                                  if k != "kind")]  # fmt: skip
        if outcome.interrupted or outcome.error:
            notes.append(f"Stopped after step {outcome.steps_done} of {len(plan)}: "
                         f"{outcome.error or 'interrupted'}.")  # fmt: skip
        result.files = report.write_report([analysis], [rec], out,
                                           f"Pattern {kind} on {connector}", notes)  # fmt: skip
        result.summary = report.summary(analysis)
    result.files["recording.csv"] = out / "recording.csv"
    result.files["pattern.json"] = out / "pattern.json"
    return result
