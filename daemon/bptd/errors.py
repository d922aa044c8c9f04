"""Exceptions of bptd.

::

    BptdError                      base of everything bptd raises on purpose
     +-- ConfigError               a configuration file or profile is invalid (exit code 2)
     |    +-- ProfileError         a device profile does not match its EDS
     +-- BusSpecError              a CAN spec string is malformed
     +-- FieldbusError             a device could not be reached or answered wrongly
     +-- ApiError                  a request was refused; carries one of the API error codes

Foreign exceptions are wrapped with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Iterable


class BptdError(Exception):
    """Base class of every error bptd raises on purpose."""


class ConfigError(BptdError):
    """A configuration is invalid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{self.source}: {len(self.problems)} problems\n{lines}"


class ProfileError(ConfigError):
    """A device profile names objects its EDS does not have, or with the wrong role."""


class BusSpecError(BptdError, ValueError):
    """A CAN spec string such as ``udp_multicast:PORT`` is malformed."""


class FieldbusError(BptdError):
    """A device could not be reached, or answered with something unexpected."""
