"""Timeouts and thresholds of a connector session, and the station facts it is built on.

Each default says where its number comes from. "bptd default" marks a choice of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bptd.config import Config, ConnectorConfig, ContactorConfiguration, ModuleRatingsConfig

#: an output below this is "dead" (IEC 61851-23: 60 V DC is the touch-safe limit it uses for
#: the discharge after a session; HARDWARE.md: modules discharge below 60 V within 1 s)
DEAD_VOLTAGE_V = 60.0


@dataclass(frozen=True)
class SessionConfig:
    # control pilot
    pwm_duty_permille: int = 50  # IEC 61851-1 Annex A: 5 % = digital communication (DC)
    # contactors
    contactor_feedback_timeout_s: float = 0.2  # bptd default = the chipset's own (docs/canopen)
    # cable check
    cable_check_voltage_v: float | None = None  # None: min(EV max V, station max output V)
    #   (the rule IEC 61851-23:2023 CC.4.1.2 as EVerest applies it; set a value to override)
    cable_check_current_a: float = 2.0  # bptd default: charges the output capacitance only
    cable_check_voltage_band_v: float = 20.0  # bptd default: "test voltage reached"
    cable_check_timeout_s: float = 30.0  # bptd default, inside the EV's 40 s
    #   V2G_EVCC_CableCheck_Timeout (DIN 70121 / ISO 15118-2)
    imd_warning_ohm_per_v: float = 500.0  # IEC 61851-23 (as commonly cited): warning below
    imd_fault_ohm_per_v: float = 100.0  # IEC 61851-23 (as commonly cited): fault below
    imd_warning_allowed: bool = True  # IEC 61851-23: a warning lets the session continue
    # precharge
    precharge_current_a: float = 2.0  # commonly cited limit (<= 2 A), research/frontends 4.2
    precharge_band_v: float = 20.0  # bptd default: |V_out - V_target| to call it matched
    precharge_timeout_s: float = 7.0  # V2G_EVCC_PreCharge_Timeout, DIN 70121 / ISO 15118-2
    # waiting for the vehicle's next message
    ev_timeout_s: float = 60.0  # V2G_SECC_Sequence_Timeout (iso15118 package: 60 s)
    # energy transfer
    ev_voltage_margin_v: float = 10.0  # bptd default tolerance over the EV max voltage
    ev_current_margin: float = 0.1  # bptd default: 10 % + 2 A over the EV current limit
    ev_current_margin_a: float = 2.0
    ev_limit_debounce_s: float = 0.2  # bptd default: one RPDO cycle of ramp lag and more
    # stopping
    stop_current_a: float = 1.0  # bptd default: contactors open below this |I|
    stop_timeout_s: float = 5.0  # bptd default: a full ramp at the slowest measured
    #   rate (12 kW/s, HARDWARE.md) from the largest allocation plus margin
    fault_open_timeout_s: float = 1.0  # bptd default: a fault opens under load after this
    # welding detection
    welding_timeout_s: float = 2.0  # CHAdeMO: < 2 s to <= 10 V; bptd: < 60 V within 2 s
    # reset
    reset_timeout_s: float = 1.0  # bptd default: latches must clear within this
    reset_pulse_s: float = 0.1  # bptd default: fault_reset held high this long (an edge)


@dataclass(frozen=True)
class StationFacts:
    """What a session knows about its station: connectors, configurations, modules."""

    connectors: Mapping[str, ConnectorConfig]
    configurations: tuple[ContactorConfiguration, ...]
    modules: tuple[int, ...]
    ratings: ModuleRatingsConfig = field(default_factory=ModuleRatingsConfig)

    @classmethod
    def from_config(cls, cfg: Config) -> StationFacts:
        return cls(
            connectors={c.name: c for c in cfg.connectors},
            configurations=tuple(cfg.contactor_configurations),
            modules=tuple(m.n for m in cfg.modules),
            ratings=cfg.module_ratings,
        )

    def configuration(self, config_id: int) -> ContactorConfiguration:
        for c in self.configurations:
            if c.id == config_id:
                return c
        raise KeyError(config_id)
