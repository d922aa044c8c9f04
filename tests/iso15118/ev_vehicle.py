"""The vehicle of the end-to-end tests: the ``iso15118`` package's own EVCC (its state
machines, its ``SimEVController`` for everything protocol-only), with its physical side on
bptd's virtual vehicle: the battery's voltage, SoC and limits come from the ``sim`` action
``status``, and the vehicle presents CP C and closes / opens its contactors with the ``sim``
action ``ev``, where a real EV would.

Runs in the frontend's virtual environment:
``.venv-iso15118/bin/python tests/iso15118/ev_vehicle.py --iface veth-ev --control ipc://...
--protocol ISO_15118_20_DC --service DC_BPT --control-mode dynamic``.
Prints one JSON line per event on stdout (``{"ev": "precharged", ...}``) and exits 0 once
the V2G session has ended (successfully or not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from typing import Any

from bptd.api.client import AsyncClient

CHARGE_LOOP_DELAY_S = 0.1  # the EV's charge-loop cycle (real EVs: 100-250 ms)
PRECHARGE_BAND_V = 15.0
TARGET_CURRENT_A = 20.0  # scheduled sessions: what the EV asks for


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"ev": event, "t": time.monotonic(), **fields}), flush=True)


def build(args: argparse.Namespace) -> Any:
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.shared.messages.datatypes import (
        DCEVChargeParams,
        PhysicalValue,
        PVEVEnergyCapacity,
        PVEVMaxCurrentLimit,
        PVEVMaxPowerLimit,
        PVEVMaxVoltageLimit,
        PVEVTargetCurrent,
        PVEVTargetVoltage,
    )
    from iso15118.shared.messages.enums import ServiceV20
    from iso15118.shared.messages.iso15118_20.common_messages import SelectedEnergyService
    from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
    from iso15118.shared.messages.iso15118_20.dc import (
        BPTDCChargeParameterDiscoveryReqParams,
        BPTDynamicDCChargeLoopReqParams,
        BPTScheduledDCChargeLoopReqParams,
        DCChargeParameterDiscoveryReqParams,
        DynamicDCChargeLoopReqParams,
        ScheduledDCChargeLoopReqParams,
    )

    def pv(cls: Any, value: float, unit: str) -> Any:
        exponent, v = PhysicalValue.get_exponent_value_repr(value)
        return cls(multiplier=exponent, value=v, unit=unit)

    def r(value: float) -> RationalNumber:
        return RationalNumber.get_rational_repr(value)

    class VirtualVehicle(SimEVController):
        def __init__(self, config: Any, client: AsyncClient) -> None:
            super().__init__(config)
            self.client = client
            self.connector = args.connector
            self.snapshot: dict[str, Any] = {}
            self.precharged = False
            self.delivering = False
            self.welding_cycles = 0

        # -------------------------------------------------------------- the vehicle
        async def vehicle(self) -> dict[str, Any]:
            status = await self.client.call("sim", action="status")
            v = ((status.get("connectors") or {}).get(self.connector) or {}).get("vehicle")
            self.snapshot = v or {}
            return self.snapshot

        async def act(self, **what: Any) -> None:
            await self.client.call("sim", action="ev", connector=self.connector, **what)
            emit("vehicle", **what)

        def lim(self, key: str) -> float:
            return float((self.snapshot.get("limits") or {}).get(key, 0.0))

        async def battery_v(self) -> float:
            v = await self.vehicle()
            return float(v.get("terminal_voltage_v") or v.get("ocv_v") or 0.0)

        def soc(self) -> int:
            return round(float(self.snapshot.get("soc", 0.5)) * 100)

        # -------------------------------------------------------------- physical hooks
        async def enable_charging(self, enabled: bool) -> None:
            if enabled:
                await self.act(cp="C")  # ready for energy: CP C before the cable check
            else:
                await self.act(contactors=False, cp="B")
                self.delivering = False

        async def is_precharged(self, present_voltage_evse: Any) -> bool:
            evse_v = float(present_voltage_evse.get_decimal_value())
            battery = await self.battery_v()
            if abs(evse_v - battery) <= PRECHARGE_BAND_V:
                if not self.precharged:
                    self.precharged = True
                    emit("precharged", evse_v=evse_v, battery_v=battery)
                    await self.act(contactors=True)  # closed before PowerDeliveryReq(Start)
                    self.delivering = True
                return True
            return False

        async def continue_charging(self) -> bool:
            v = await self.vehicle()
            if v.get("wants_stop"):
                emit("stop_requested", soc=v.get("soc"))
                return False
            return True

        async def ready_to_charge(self) -> bool:
            return True

        async def is_charging_complete(self) -> bool:
            return bool(self.snapshot.get("wants_stop"))

        async def charge_loop_delay(self) -> Any:
            return CHARGE_LOOP_DELAY_S

        async def welding_detection_has_finished(self) -> bool:
            self.welding_cycles += 1
            return self.welding_cycles >= 2

        async def stop_charging(self) -> None:
            self._charging_is_completed = True

        # -------------------------------------------------------------- -20 parameters
        async def select_energy_service_v20(self, services: Any) -> Any:
            wanted = 2 if args.control_mode == "dynamic" else 1
            service = services[0]
            chosen = service.parameter_sets[0]
            for ps in service.parameter_sets:
                modes = [p.int_value for p in ps.parameters if p.name == "ControlMode"]
                if modes == [wanted]:
                    chosen = ps
                    break
            emit("service_selected", service=service.service.name, parameter_set=chosen.id)
            return SelectedEnergyService(
                service=service.service, is_free=service.is_free, parameter_set=chosen
            )

        async def get_charge_params_v20(self, selected_service: Any) -> Any:
            await self.vehicle()
            dc = DCChargeParameterDiscoveryReqParams(
                ev_max_charge_power=r(self.lim("max_charge_power_w")),
                ev_min_charge_power=r(0),
                ev_max_charge_current=r(self.lim("max_charge_current_a")),
                ev_min_charge_current=r(0),
                ev_max_voltage=r(self.lim("max_voltage_v")),
                ev_min_voltage=r(self.lim("min_voltage_v")),
            )
            if selected_service.service != ServiceV20.DC_BPT:
                return dc
            return BPTDCChargeParameterDiscoveryReqParams(
                **dc.dict(),
                ev_max_discharge_power=r(self.lim("max_discharge_power_w")),
                ev_min_discharge_power=r(0),
                ev_max_discharge_current=r(self.lim("max_discharge_current_a")),
                ev_min_discharge_current=r(0),
            )

        async def get_present_voltage(self) -> RationalNumber:
            return r(await self.battery_v())

        async def get_target_voltage(self) -> RationalNumber:
            return r(await self.battery_v())  # precharge to the battery

        async def get_scheduled_dc_charge_loop_params(self) -> Any:
            await self.vehicle()
            return ScheduledDCChargeLoopReqParams(
                ev_target_current=r(TARGET_CURRENT_A),
                ev_target_voltage=r(self.lim("max_voltage_v")),
            )

        async def get_bpt_scheduled_dc_charge_loop_params(self) -> Any:
            p = await self.get_scheduled_dc_charge_loop_params()
            return BPTScheduledDCChargeLoopReqParams(**p.dict())

        async def get_dynamic_dc_charge_loop_params(self) -> Any:
            await self.vehicle()
            return DynamicDCChargeLoopReqParams(
                ev_target_energy_request=r(20000),
                ev_max_energy_request=r(30000),
                ev_min_energy_request=r(-10000),
                ev_max_charge_power=r(self.lim("max_charge_power_w")),
                ev_min_charge_power=r(0),
                ev_max_charge_current=r(self.lim("max_charge_current_a")),
                ev_max_voltage=r(self.lim("max_voltage_v")),
                ev_min_voltage=r(self.lim("min_voltage_v")),
            )

        async def get_bpt_dynamic_dc_charge_loop_params(self) -> Any:
            p = await self.get_dynamic_dc_charge_loop_params()
            return BPTDynamicDCChargeLoopReqParams(
                **p.dict(),
                ev_max_discharge_power=r(self.lim("max_discharge_power_w")),
                ev_min_discharge_power=r(0),
                ev_max_discharge_current=r(self.lim("max_discharge_current_a")),
                ev_max_v2x_energy_request=r(10000),
                ev_min_v2x_energy_request=r(-10000),
            )

        # -------------------------------------------------------------- -2 / DIN
        async def _dc_params(self) -> DCEVChargeParams:
            battery = await self.battery_v()
            target_v = self.lim("max_voltage_v") if self.delivering else battery
            target_i = TARGET_CURRENT_A if self.delivering else 0.0
            self.dc_ev_charge_params = DCEVChargeParams(
                dc_max_current_limit=pv(PVEVMaxCurrentLimit, self.lim("max_charge_current_a"), "A"),
                dc_max_power_limit=pv(PVEVMaxPowerLimit, self.lim("max_charge_power_w"), "W"),
                dc_max_voltage_limit=pv(PVEVMaxVoltageLimit, self.lim("max_voltage_v"), "V"),
                dc_energy_capacity=pv(PVEVEnergyCapacity, 60000, "Wh"),
                dc_target_current=pv(PVEVTargetCurrent, target_i, "A"),
                dc_target_voltage=pv(PVEVTargetVoltage, target_v, "V"),
            )
            self._soc = self.soc()
            return self.dc_ev_charge_params

        async def get_dc_charge_params(self) -> DCEVChargeParams:
            return await self._dc_params()

        async def get_charge_params_v2(self, protocol: Any) -> Any:
            await self._dc_params()
            return await super().get_charge_params_v2(protocol)

    return VirtualVehicle


async def run(args: argparse.Namespace) -> int:
    from iso15118.evcc import EVCCHandler
    from iso15118.evcc.evcc_config import EVCCConfig
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec
    from iso15118.shared.settings import load_shared_settings

    config = EVCCConfig(
        supportedProtocols=[args.protocol],
        supportedEnergyServices=[args.service],
        energyTransferMode="DC_extended",
        isCertInstallNeeded=False,
        useTls=False,
        sdpRetryCycles=1,
    )
    config.load_raw_values()
    load_shared_settings()
    client = AsyncClient(args.control, timeout_s=2.0)
    controller = build(args)(config, client)
    handler = EVCCHandler(
        evcc_config=config,
        iface=args.iface,
        exi_codec=ExificientEXICodec(),
        ev_controller=controller,
    )
    task = asyncio.create_task(handler.start())
    emit("started", protocol=args.protocol, service=args.service)
    seen = False
    try:
        while not task.done():
            active = getattr(handler, "comm_session", None) is not None
            if active and not seen:
                seen = True
                emit("session_started")
            if seen and not active:  # a failed session: the handler would try SDP again
                emit("session_ended", successful=False)
                return 0
            await asyncio.sleep(0.05)
        if task.exception() is not None:
            emit("handler_failed", error=str(task.exception()))
            return 1
        emit("session_ended", successful=True)  # the handler ends after a successful stop
        return 0
    finally:
        task.cancel()
        await client.aclose()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--connector", default="ccs")
    p.add_argument("--protocol", default="ISO_15118_20_DC")
    p.add_argument("--service", default="DC", choices=("DC", "DC_BPT"))
    p.add_argument("--control-mode", default="scheduled", choices=("scheduled", "dynamic"))
    args = p.parse_args()
    os.environ.update(
        {"NETWORK_INTERFACE": args.iface, "MESSAGE_LOG_JSON": "false", "LOG_LEVEL": "INFO"}
    )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    assert math.isfinite(CHARGE_LOOP_DELAY_S)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
