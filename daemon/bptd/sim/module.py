"""Physical model of one bidirectional power module (a DC/DC stage and an AFE stage).

Follows its setpoints after an activation delay and at a ramp rate, enforces its own safe
operating area, has losses (an efficiency map), heats up and derates, protects itself on
communication loss, and reports AC and DC measurements. Commands and status use the
profile's semantic names, so the bus glue copies them one to one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bptd import emcy
from bptd.codes import (
    AC_HARDWARE,
    AC_HEARTBEAT,
    AC_OVERTEMP,
    AC_RPDO_TIMEOUT,
    DC_DERATING,
    DC_HARDWARE,
    DC_HEARTBEAT,
    DC_OUTSIDE_SOA,
    DC_OVERCURRENT,
    DC_OVERTEMP,
    DC_OVERVOLTAGE,
    DC_RPDO_TIMEOUT,
    FAULT_RESET_BIT,
    MODE_AC_POWER,
    MODE_DC_VOLTAGE,
    MODE_V2L,
)
from bptd.codes import MODULE_FAULT as FAULT
from bptd.codes import MODULE_OFF as OFF
from bptd.codes import MODULE_RUNNING as RUNNING
from bptd.codes import MODULE_STANDBY as STANDBY
from bptd.config import ModuleRatingsConfig, SimConfig
from bptd.emcy import Emcy

#: current a module may use below its voltage window to charge its output capacitance
PRECHARGE_CURRENT_A = 2.0

DC_LATCHED = (
    DC_OVERTEMP | DC_OVERVOLTAGE | DC_OVERCURRENT | DC_HEARTBEAT | DC_RPDO_TIMEOUT | DC_HARDWARE
)

COMM_BITS = {
    "heartbeat": (DC_HEARTBEAT, AC_HEARTBEAT, emcy.HEARTBEAT_LOST),
    "rpdo_timeout": (DC_RPDO_TIMEOUT, AC_RPDO_TIMEOUT, emcy.RPDO_TIMEOUT),
}

DCDC_COMMANDS = {
    "state_request": 0,
    "power_mode": MODE_DC_VOLTAGE,
    "voltage_setpoint_v": 0.0,
    "charge_current_limit_a": 0.0,
    "discharge_current_limit_a": 0.0,
}
AFE_COMMANDS = {
    "state_request": 0,
    "operating_mode": MODE_DC_VOLTAGE,
    "active_power_setpoint_w": 0.0,
    "reactive_power_setpoint_var": 0.0,
    "power_factor_setpoint_permille": 0.0,
    "active_ramp_w_per_s": 30000.0,
    "reactive_ramp_var_per_s": 5000.0,
    "v2l_voltage_v": 230.0,
    "v2l_frequency_hz": 50.0,
}

SMALL_CURRENT_A = 2.5  # output-capacitance charging current accepted outside the SOA window


def efficiency(power_w: float, voltage_v: float, peak: float = 0.955) -> float:
    """Conversion efficiency of one module at a DC power and voltage (the sim's map)."""
    p = abs(power_w)
    eff = peak - 0.06 * math.exp(-p / 2000.0) - 0.015 * ((voltage_v - 400.0) / 200.0) ** 2
    return min(peak, max(0.5, eff))


@dataclass
class _Setpoint:
    """The DC/DC command the regulator acts on (after the activation delay)."""

    voltage_v: float = 0.0
    charge_limit_a: float = 0.0
    discharge_limit_a: float = 0.0
    power_mode: int = MODE_DC_VOLTAGE
    ac_power_w: float = 0.0


@dataclass
class ModuleModel:
    """One BMPU. ``dcdc`` / ``afe`` hold the latest commands by semantic name."""

    n: int
    ratings: ModuleRatingsConfig
    sim: SimConfig
    dcdc: dict[str, float] = field(default_factory=lambda: dict(DCDC_COMMANDS))
    afe: dict[str, float] = field(default_factory=lambda: dict(AFE_COMMANDS))
    dcdc_operational: bool = False
    afe_operational: bool = False
    # state
    dcdc_state: int = OFF
    afe_state: int = OFF
    dc_fault: int = 0
    ac_fault: int = 0
    current_a: float = 0.0
    voltage_v: float = 0.0
    temperature_c: float = 25.0
    forced_temperature_c: float | None = None
    reactive_power_var: float = 0.0
    ac_power_w: float = 0.0
    hardware_fault: bool = False
    emcys_dcdc: list[Emcy] = field(default_factory=list)
    emcys_afe: list[Emcy] = field(default_factory=list)
    _queue: deque[tuple[float, _Setpoint]] = field(default_factory=deque)
    _active: _Setpoint = field(default_factory=_Setpoint)
    _last_cmd: _Setpoint | None = None
    _prev_reset: bool = False
    _derating_warned: bool = False
    _soa_refused: bool = False
    target_a: float = 0.0

    def __post_init__(self) -> None:
        self.temperature_c = self.sim.ambient_c

    # ------------------------------------------------------------------ commands
    def _command(self) -> _Setpoint:
        return _Setpoint(
            voltage_v=float(self.dcdc["voltage_setpoint_v"]),
            charge_limit_a=float(self.dcdc["charge_current_limit_a"]),
            discharge_limit_a=float(self.dcdc["discharge_current_limit_a"]),
            power_mode=int(self.dcdc["power_mode"]),
            ac_power_w=float(self.afe["active_power_setpoint_w"]),
        )

    def _update_delay_line(self, now: float) -> None:
        cmd = self._command()
        if cmd != self._last_cmd:
            discharging = (cmd.discharge_limit_a > 0 and cmd.charge_limit_a == 0) or (
                cmd.power_mode == MODE_AC_POWER and cmd.ac_power_w < 0
            )
            delay = (
                self.sim.discharge_activation_delay_s
                if discharging
                else self.sim.activation_delay_s
            )
            self._queue.append((now + delay, cmd))
            self._last_cmd = cmd
        while self._queue and self._queue[0][0] <= now:
            self._active = self._queue.popleft()[1]

    # ------------------------------------------------------------------ faults
    def comm_fault(self, kind: str, stage: str) -> None:
        """The bus glue saw the supervisor heartbeat or the setpoint RPDO time out."""
        dc_bit, ac_bit, code = COMM_BITS[kind]
        if stage == "dcdc" and not self.dc_fault & dc_bit:
            self.dc_fault |= dc_bit
            self.emcys_dcdc.append(Emcy(code))
        if stage == "afe" and not self.ac_fault & ac_bit:
            self.ac_fault |= ac_bit
            self.emcys_afe.append(Emcy(code))

    def set_hardware_fault(self, on: bool) -> None:
        self.hardware_fault = on
        if on:
            self.dc_fault |= DC_HARDWARE
            self.emcys_dcdc.append(Emcy(emcy.HARDWARE))

    def reset(self) -> None:
        """Power-on state (NMT reset node)."""
        self.dcdc = dict(DCDC_COMMANDS)
        self.afe = dict(AFE_COMMANDS)
        self.dcdc_state = self.afe_state = OFF
        self.dc_fault = self.ac_fault = 0
        self.current_a = 0.0
        self.target_a = 0.0
        self.reactive_power_var = 0.0
        self.ac_power_w = 0.0
        self._queue.clear()
        self._active = _Setpoint()
        self._last_cmd = None
        self._derating_warned = False
        if self.hardware_fault:
            self.dc_fault |= DC_HARDWARE

    # ------------------------------------------------------------------ SOA
    def derating(self) -> float:
        t0, t1 = self.ratings.derating_start_c, self.ratings.derating_end_c
        if self.temperature_c <= t0:
            return 1.0
        if self.temperature_c >= t1:
            return 0.0
        return (t1 - self.temperature_c) / (t1 - t0)

    def soa_charge_a(self, voltage_v: float) -> float:
        r = self.ratings
        if not r.min_charge_voltage_v <= voltage_v <= r.max_voltage_v:
            return 0.0
        return min(r.max_charge_current_a, r.max_charge_power_w / voltage_v) * self.derating()

    def soa_discharge_a(self, voltage_v: float) -> float:
        r = self.ratings
        if not r.min_discharge_voltage_v <= voltage_v <= r.max_voltage_v:
            return 0.0
        return min(r.max_discharge_current_a, r.max_discharge_power_w / voltage_v) * self.derating()

    @property
    def running(self) -> bool:
        return self.dcdc_state == RUNNING

    def limits_a(self, voltage_v: float) -> tuple[float, float]:
        """(charge, discharge) current the regulator may use now, both >= 0."""
        if not self.running:
            return 0.0, 0.0
        sp = self._active
        if sp.power_mode == MODE_V2L:
            return 0.0, self.soa_discharge_a(voltage_v)
        chg = min(sp.charge_limit_a, self.soa_charge_a(voltage_v))
        dis = min(sp.discharge_limit_a, self.soa_discharge_a(voltage_v))
        if sp.power_mode == MODE_AC_POWER:
            chg, dis = self.soa_charge_a(voltage_v), self.soa_discharge_a(voltage_v)
            if sp.charge_limit_a > 0:
                chg = min(chg, sp.charge_limit_a)
            if sp.discharge_limit_a > 0:
                dis = min(dis, sp.discharge_limit_a)
        return max(0.0, chg), max(0.0, dis)

    def regulator_target(
        self,
        voltage_v: float,
        ocv_v: float | None,
        r_ohm: float,
        cap_f: float,
        dt_s: float,
        share: int,
    ) -> float:
        """Current the module wants at its terminals (before its own ramp), SOA-clamped."""
        chg, dis = self.limits_a(voltage_v)
        if not self.running:
            return 0.0
        sp = self._active
        if sp.power_mode == MODE_AC_POWER:
            p_ac = sp.ac_power_w
            eff = efficiency(p_ac, voltage_v, self.sim.peak_efficiency)
            p_dc = p_ac * eff if p_ac >= 0 else p_ac / eff
            want = p_dc / max(voltage_v, 1.0)
        elif sp.power_mode == MODE_V2L:
            want = 0.0
        elif ocv_v is not None:  # DC voltage control against a battery
            want = (sp.voltage_v - ocv_v) / (0.05 + r_ohm)
        else:  # DC voltage control into the output capacitance (precharge, cable check)
            want = cap_f * (sp.voltage_v - voltage_v) / dt_s / max(share, 1)
            if voltage_v < self.ratings.min_charge_voltage_v:
                chg = max(chg, min(sp.charge_limit_a, PRECHARGE_CURRENT_A))
            dis = max(dis, PRECHARGE_CURRENT_A)  # the output stage can sink its own capacitance
        return min(chg, max(-dis, want))

    def ramp_a_per_s(self, voltage_v: float) -> float:
        programmed = float(self.afe["active_ramp_w_per_s"])  # 0 = the module's own maximum
        rate_w = min(self.sim.ramp_w_per_s, programmed) if programmed > 0 else self.sim.ramp_w_per_s
        return rate_w / max(voltage_v, 50.0)

    def ramp_toward(self, target_a: float, voltage_v: float, dt_s: float) -> float:
        step = self.ramp_a_per_s(voltage_v) * dt_s
        self.target_a = target_a
        if not self.running:
            self.current_a = 0.0  # switching stops at once
        else:
            self.current_a += max(-step, min(step, target_a - self.current_a))
        return self.current_a

    # ------------------------------------------------------------------ state
    def step(self, now: float, dt_s: float) -> None:
        """Advance states, faults, temperature and the AC side (current is set by the plant)."""
        self._update_delay_line(now)
        for stage, cmds, ops in (
            ("dcdc", self.dcdc, self.dcdc_operational),
            ("afe", self.afe, self.afe_operational),
        ):
            req = int(cmds["state_request"])
            reset = bool(req & FAULT_RESET_BIT)
            if stage == "dcdc":
                if reset and not self._prev_reset:
                    self._fault_reset()
                self._prev_reset = reset
            want = (req & 0x7F) if ops else OFF
            faulted = (self.dc_fault & DC_LATCHED) if stage == "dcdc" else self.ac_fault
            if faulted:
                new = FAULT
            elif want == RUNNING:
                new = RUNNING
            elif want == STANDBY:
                new = STANDBY
            else:
                new = OFF
            if stage == "dcdc":
                if new == RUNNING and self.afe_state != RUNNING:
                    new = STANDBY  # the DC/DC needs the AFE's DC link
                self.dcdc_state = new
            else:
                self.afe_state = new
        self._thermal(dt_s)
        self._soa_flags()
        self._ac_side(dt_s)

    def _fault_reset(self) -> None:
        keep = DC_HARDWARE if self.hardware_fault else 0
        if (
            self.forced_temperature_c is not None
            and self.forced_temperature_c >= self.sim.overtemp_trip_c
        ):
            keep |= DC_OVERTEMP
        if self.dc_fault or self.ac_fault:
            self.dc_fault = (self.dc_fault & keep) | (self.dc_fault & ~DC_LATCHED)
            self.ac_fault = self.ac_fault & (AC_HARDWARE if self.hardware_fault else 0)
            if not self.dc_fault & DC_LATCHED:
                self.emcys_dcdc.append(Emcy(emcy.ERROR_RESET))
                self.emcys_afe.append(Emcy(emcy.ERROR_RESET))

    def _thermal(self, dt_s: float) -> None:
        if self.forced_temperature_c is not None:
            self.temperature_c = self.forced_temperature_c
        else:
            p_dc = self.current_a * self.voltage_v
            loss = abs(p_dc) * (
                1.0 / efficiency(p_dc, self.voltage_v, self.sim.peak_efficiency) - 1.0
            )
            steady = self.sim.ambient_c + loss * self.sim.thermal_resistance_k_per_w
            a = min(1.0, dt_s / self.sim.thermal_time_constant_s)
            self.temperature_c += (steady - self.temperature_c) * a
        if self.derating() < 1.0:
            self.dc_fault |= DC_DERATING
            if not self._derating_warned:
                self._derating_warned = True
                self.emcys_dcdc.append(Emcy(emcy.OVER_TEMPERATURE, bytes([emcy.OVERTEMP_DERATING])))
        else:
            self.dc_fault &= ~DC_DERATING
            self._derating_warned = False
        if self.temperature_c >= self.sim.overtemp_trip_c and not self.dc_fault & DC_OVERTEMP:
            self.dc_fault |= DC_OVERTEMP
            self.ac_fault |= AC_OVERTEMP
            self.emcys_dcdc.append(Emcy(emcy.OVER_TEMPERATURE, bytes([emcy.OVERTEMP_TRIP])))

    def _soa_flags(self) -> None:
        r = self.ratings
        sp = self._active
        outside = False
        # a few amperes outside the window are the output capacitance being charged for a
        # cable check / precharge, which a module does in voltage mode from 0 V
        if self.running and self.voltage_v > 1.0:
            if (
                sp.charge_limit_a > SMALL_CURRENT_A
                and not r.min_charge_voltage_v <= self.voltage_v <= r.max_voltage_v
            ):
                outside = True
            if sp.discharge_limit_a > SMALL_CURRENT_A and not (
                r.min_discharge_voltage_v <= self.voltage_v <= r.max_voltage_v
            ):
                outside = True
        if outside and not self._soa_refused:
            self.emcys_dcdc.append(Emcy(emcy.OUTSIDE_SOA))
        self._soa_refused = outside
        self.dc_fault = (
            (self.dc_fault | DC_OUTSIDE_SOA) if outside else (self.dc_fault & ~DC_OUTSIDE_SOA)
        )
        if self.voltage_v > r.max_voltage_v * 1.05 and not self.dc_fault & DC_OVERVOLTAGE:
            self.dc_fault |= DC_OVERVOLTAGE
            self.emcys_dcdc.append(Emcy(emcy.DC_OVER_VOLTAGE))

    def _ac_side(self, dt_s: float) -> None:
        p_dc = self.current_a * self.voltage_v
        if self.afe_state != RUNNING:
            self.ac_power_w = 0.0
            self.reactive_power_var = 0.0
            return
        eff = efficiency(p_dc, self.voltage_v, self.sim.peak_efficiency)
        self.ac_power_w = p_dc / eff if p_dc >= 0 else p_dc * eff
        if int(self.afe["operating_mode"]) == MODE_V2L:
            self.ac_power_w = 0.0
        s_max = self.ratings.max_phase_current_a * self.ratings.phases * self.sim.grid_voltage_ln_v
        pf_set = float(self.afe["power_factor_setpoint_permille"]) / 1000.0
        if pf_set:
            pf = max(self.ratings.min_power_factor, min(1.0, abs(pf_set)))
            q_want = math.copysign(abs(self.ac_power_w) * math.tan(math.acos(pf)), pf_set)
        else:
            q_want = float(self.afe["reactive_power_setpoint_var"])
        q_room = math.sqrt(max(0.0, s_max**2 - self.ac_power_w**2))
        if abs(self.ac_power_w) > 1.0:
            q_room = min(
                q_room, abs(self.ac_power_w) * math.tan(math.acos(self.ratings.min_power_factor))
            )
        q_want = max(-q_room, min(q_room, q_want))
        programmed = float(self.afe["reactive_ramp_var_per_s"])  # 0 = the module's maximum
        rate = self.ratings.max_reactive_ramp_var_per_s
        if programmed > 0:
            rate = min(rate, programmed)
        rate *= dt_s
        self.reactive_power_var += max(-rate, min(rate, q_want - self.reactive_power_var))

    # ------------------------------------------------------------------ status
    def dcdc_status(self) -> dict[str, float]:
        v = self.voltage_v
        return {
            "state": self.dcdc_state,
            "power_mode_actual": int(self.dcdc["power_mode"]),
            "dc_voltage_v": max(0.0, v),
            "dc_current_a": self.current_a,
            "fault_word": self.dc_fault,
            "temperature_c": self.temperature_c,
            "derating_permille": round(self.derating() * 1000),
            "charge_current_available_a": self.soa_charge_a(v) if v > 1 else 0.0,
            "discharge_current_available_a": self.soa_discharge_a(v) if v > 1 else 0.0,
        }

    def afe_status(self) -> dict[str, float]:
        grid_v = self.sim.grid_voltage_ln_v
        freq = self.sim.grid_frequency_hz
        mode = int(self.afe["operating_mode"])
        if mode == MODE_V2L and self.afe_state == RUNNING:
            grid_v = float(self.afe["v2l_voltage_v"])
            freq = float(self.afe["v2l_frequency_hz"])
        s = math.hypot(self.ac_power_w, self.reactive_power_var)
        i_phase = s / (self.ratings.phases * grid_v) if grid_v > 0 else 0.0
        i_phase = math.copysign(i_phase, self.ac_power_w) if self.ac_power_w else i_phase
        pf = self.ac_power_w / s if s > 1.0 else 1.0
        return {
            "state": self.afe_state,
            "operating_mode_actual": mode,
            "fault_word": self.ac_fault,
            "active_power_w": self.ac_power_w,
            "reactive_power_var": self.reactive_power_var,
            "frequency_hz": freq,
            "dc_bus_voltage_v": 750.0 if self.afe_state == RUNNING else 0.0,
            "voltage_l1_v": grid_v,
            "voltage_l2_v": grid_v,
            "voltage_l3_v": grid_v,
            "current_l1_a": i_phase,
            "current_l2_a": i_phase,
            "current_l3_a": i_phase,
            "power_factor_permille": round(pf * 1000),
            "temperature_c": self.temperature_c - 5.0,
        }
