"""EMCY codes of the bptd open profile (CiA 301 classes plus profile codes 0xFFxx).

Shared by the virtual devices (which send them) and the CANopen master (which decodes them).
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_RESET = 0x0000
OVER_CURRENT = 0x2310
DC_OVER_VOLTAGE = 0x3210
OVER_TEMPERATURE = 0x4210
HARDWARE = 0x5000
HEARTBEAT_LOST = 0x8130
RPDO_TIMEOUT = 0x8250
INSULATION_FAULT = 0xFF01
ESTOP = 0xFF02
CONTACTOR_MISMATCH = 0xFF03
CP_LOSS = 0xFF04
ROUTING_CONFLICT = 0xFF05
OUTSIDE_SOA = 0xFF06

# Error register (0x1001) bits
REG_GENERIC = 0x01
REG_CURRENT = 0x02
REG_VOLTAGE = 0x04
REG_TEMPERATURE = 0x08
REG_COMMUNICATION = 0x10
REG_PROFILE = 0x20
REG_MANUFACTURER = 0x80

#: over-temperature data byte 0
OVERTEMP_DERATING = 1
OVERTEMP_TRIP = 2

TEXTS: dict[int, str] = {
    ERROR_RESET: "error reset",
    OVER_CURRENT: "output over-current",
    DC_OVER_VOLTAGE: "DC over-voltage",
    OVER_TEMPERATURE: "over-temperature",
    HARDWARE: "hardware fault",
    HEARTBEAT_LOST: "supervisor heartbeat lost",
    RPDO_TIMEOUT: "setpoint RPDO timeout",
    INSULATION_FAULT: "insulation fault",
    ESTOP: "emergency stop",
    CONTACTOR_MISMATCH: "contactor feedback mismatch",
    CP_LOSS: "control pilot loss",
    ROUTING_CONFLICT: "module routed to two connectors",
    OUTSIDE_SOA: "request outside the safe operating area",
}

REGISTER_OF: dict[int, int] = {
    OVER_CURRENT: REG_GENERIC | REG_CURRENT,
    DC_OVER_VOLTAGE: REG_GENERIC | REG_VOLTAGE,
    OVER_TEMPERATURE: REG_GENERIC | REG_TEMPERATURE,
    HARDWARE: REG_GENERIC | REG_MANUFACTURER,
    HEARTBEAT_LOST: REG_GENERIC | REG_COMMUNICATION,
    RPDO_TIMEOUT: REG_GENERIC | REG_COMMUNICATION,
    INSULATION_FAULT: REG_GENERIC | REG_MANUFACTURER,
    ESTOP: REG_GENERIC | REG_MANUFACTURER,
    CONTACTOR_MISMATCH: REG_GENERIC | REG_MANUFACTURER,
    CP_LOSS: REG_GENERIC | REG_MANUFACTURER,
    ROUTING_CONFLICT: REG_GENERIC | REG_MANUFACTURER,
    OUTSIDE_SOA: REG_GENERIC | REG_PROFILE,
}


def describe(code: int) -> str:
    """Readable text for an EMCY code: the profile's own text or the CiA 301 class."""
    if code in TEXTS:
        return TEXTS[code]
    classes = {
        0x1000: "generic error",
        0x2000: "current",
        0x3000: "voltage",
        0x4000: "temperature",
        0x5000: "device hardware",
        0x6000: "device software",
        0x7000: "additional modules",
        0x8000: "monitoring / communication",
        0x9000: "external error",
        0xF000: "additional functions",
        0xFF00: "device specific",
    }
    for base in (0xFF00, *sorted((k for k in classes if k != 0xFF00), reverse=True)):
        if code & (0xFF00 if base == 0xFF00 else 0xF000) == base:
            return classes[base]
    return "unknown"


@dataclass(frozen=True)
class Emcy:
    """An EMCY a model wants sent: code, error register and up to 5 data bytes."""

    code: int
    data: bytes = b""

    @property
    def register(self) -> int:
        return REGISTER_OF.get(self.code, REG_GENERIC if self.code else 0)
