"""Value meanings of the open profile's objects (docs/canopen.md): one definition, used by
the virtual devices, the session machine and the master alike."""

from __future__ import annotations

from collections.abc import Iterable

# ---------------------------------------------------------------- chipset
#: ``cp_state`` (IEC 61851-1 Annex A)
CP_A, CP_B, CP_C, CP_D, CP_E, CP_F = range(6)
CP_LETTERS = "ABCDEF"
CP_VOLTS = (12.0, 9.0, 6.0, 3.0, 0.0, -12.0)
#: ``cp_mode``: steady +12 V, PWM at ``pwm_duty_permille``, state E (0 V), state F (-12 V)
CP_MODE_STEADY, CP_MODE_PWM, CP_MODE_E, CP_MODE_F = 0, 1, 2, 3
#: ``contactor_command`` / ``contactor_feedback`` bits
DC_PLUS, DC_MINUS, SERIES = 1 << 0, 1 << 1, 1 << 2
OUTPUTS = DC_PLUS | DC_MINUS
MODULE_SHIFT = 8  # bits 8..23: module 1..16 routed to this connector
#: ``imd_state``
IMD_OFF, IMD_MEASURING, IMD_VALID, IMD_WARNING, IMD_FAULT = range(5)
INSULATION_NOT_MEASURED_KOHM = 65535
#: ``safety_state``
SAFETY_INIT, SAFETY_SAFE, SAFETY_ARMED, SAFETY_FAULT = range(4)
#: chipset ``fault_word`` bits
F_ESTOP = 1 << 0
F_INSULATION = 1 << 1
F_CP_LOSS = 1 << 2
F_HEARTBEAT = 1 << 3
F_CONTACTOR = 1 << 4
F_ROUTING = 1 << 5
F_RPDO_TIMEOUT = 1 << 6
F_OVERVOLTAGE = 1 << 7


def module_bits(modules: Iterable[int]) -> int:
    """Contactor command bits routing ``modules`` (numbers 1..16) to a connector."""
    bits = 0
    for n in modules:
        bits |= 1 << (MODULE_SHIFT + n - 1)
    return bits


def routed_modules(bits: int) -> list[int]:
    """Module numbers routed by contactor bits."""
    return [n for n in range(1, 17) if bits & (1 << (MODULE_SHIFT + n - 1))]


# ---------------------------------------------------------------- power module stages
#: ``state`` of the DC/DC and AFE stages
MODULE_OFF, MODULE_STANDBY, MODULE_RUNNING, MODULE_FAULT = range(4)
#: ``state_request`` bit 7: fault reset (edge)
FAULT_RESET_BIT = 0x80
#: ``power_mode`` / ``operating_mode``
MODE_AC_POWER, MODE_DC_VOLTAGE, MODE_V2L = 1, 2, 3
#: DC/DC ``fault_word`` bits
DC_OVERTEMP = 1 << 0
DC_OVERVOLTAGE = 1 << 1
DC_OVERCURRENT = 1 << 2
DC_HEARTBEAT = 1 << 3
DC_RPDO_TIMEOUT = 1 << 4
DC_HARDWARE = 1 << 5
DC_OUTSIDE_SOA = 1 << 6
DC_DERATING = 1 << 7
#: AFE ``fault_word`` bits
AC_OVERTEMP = 1 << 0
AC_GRID_VOLTAGE = 1 << 1
AC_GRID_FREQUENCY = 1 << 2
AC_HEARTBEAT = 1 << 3
AC_RPDO_TIMEOUT = 1 << 4
AC_HARDWARE = 1 << 5
