"""Errors of the CANopen master, and the SDO abort codes (CiA 301) as readable text.

::

    bptd.errors.FieldbusError       a device could not be reached or answered wrongly
     +-- SdoAbortError              the device refused an SDO transfer; ``code`` is the abort code
     +-- SdoTimeoutError            no (or no valid) SDO response after every retry
     +-- NodeUnavailableError       the node is unknown, or the bus is down (nothing was sent)

Every message names the node key, the object as ``0xIIII:SS`` and, for an abort, the code in
hex and its meaning, e.g. ``dcdc.1 0x2200:01 write refused: SDO abort 0x06010002 (attempt
to write a read-only object)``. Tests compare ``code``, never the text.
"""

from __future__ import annotations

from bptd.errors import FieldbusError

#: SDO abort codes of CiA 301 (table 22) and their meaning.
SDO_ABORT_CODES: dict[int, str] = {
    0x05030000: "toggle bit not alternated",
    0x05040000: "SDO protocol timed out",
    0x05040001: "client/server command specifier not valid or unknown",
    0x05040002: "invalid block size",
    0x05040003: "invalid sequence number",
    0x05040004: "CRC error",
    0x05040005: "out of memory",
    0x06010000: "unsupported access to an object",
    0x06010001: "attempt to read a write-only object",
    0x06010002: "attempt to write a read-only object",
    0x06020000: "object does not exist in the object dictionary",
    0x06040041: "object cannot be mapped to the PDO",
    0x06040042: "the number and length of the mapped objects would exceed the PDO length",
    0x06040043: "general parameter incompatibility",
    0x06040047: "general internal incompatibility in the device",
    0x06060000: "access failed due to a hardware error",
    0x06070010: "data type does not match, length of service parameter does not match",
    0x06070012: "data type does not match, length of service parameter too high",
    0x06070013: "data type does not match, length of service parameter too low",
    0x06090011: "sub-index does not exist",
    0x06090030: "invalid value for parameter (download only)",
    0x06090031: "value of parameter written too high (download only)",
    0x06090032: "value of parameter written too low (download only)",
    0x06090036: "maximum value is less than minimum value",
    0x060A0023: "resource not available: SDO connection",
    0x08000000: "general error",
    0x08000020: "data cannot be transferred or stored to the application",
    0x08000021: "data cannot be transferred or stored because of local control",
    0x08000022: "data cannot be transferred or stored because of the present device state",
    0x08000023: "object dictionary dynamic generation failed or no object dictionary present",
    0x08000024: "no data available",
}


def abort_text(code: int) -> str:
    """``0x06010002 (attempt to write a read-only object)``; unknown codes keep their number."""
    meaning = SDO_ABORT_CODES.get(code)
    if meaning is None:
        # CiA 301: 0x0800xxxx and 0x0609xxxx families share their class meaning
        meaning = "device-specific abort code"
    return f"0x{code:08X} ({meaning})"


class SdoAbortError(FieldbusError):
    """The device answered an SDO transfer with an abort."""

    def __init__(self, key: str, index: int, subindex: int, action: str, code: int) -> None:
        self.key = key
        self.index = index
        self.subindex = subindex
        self.action = action
        self.code = code
        super().__init__(
            f"{key} 0x{index:04X}:{subindex:02X} {action} refused: SDO abort {abort_text(code)}"
        )


class SdoTimeoutError(FieldbusError):
    """No valid SDO response (after ``can.sdo_retries`` attempts of ``can.sdo_timeout_s``)."""

    def __init__(self, key: str, index: int, subindex: int, action: str, detail: str) -> None:
        self.key = key
        self.index = index
        self.subindex = subindex
        self.action = action
        super().__init__(f"{key} 0x{index:04X}:{subindex:02X} {action} failed: {detail}")


class NodeUnavailableError(FieldbusError):
    """The node key is unknown, or the bus is down; nothing was sent."""
