"""Module ownership across connectors, and the station aggregate of connector sessions.

A module belongs to one connector at a time. An allocation is valid when one contactor
configuration of the station routes exactly the allocated modules, in the requested
topology, to every connector that holds modules (so two connectors at once need a
configuration such as 9 or 10 that serves both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bptd.api.protocol import ErrorCode
from bptd.config import Config, ContactorConfiguration
from bptd.session.config import SessionConfig, StationFacts
from bptd.session.errors import SessionError
from bptd.session.machine import ConnectorSession
from bptd.session.ownership import Allocation, ModuleOwnership
from bptd.session.types import ConnectorInputs, ConnectorOutputs

__all__ = ["Allocation", "ModuleOwnership", "Station"]


@dataclass
class Station:
    """All connector sessions of one station, sharing one :class:`ModuleOwnership`."""

    facts: StationFacts
    config: SessionConfig = field(default_factory=SessionConfig)
    ownership: ModuleOwnership = field(init=False)
    sessions: dict[str, ConnectorSession] = field(init=False)

    def __post_init__(self) -> None:
        self.ownership = ModuleOwnership(self.facts)
        self.sessions = {
            name: ConnectorSession(name, self.config, self.facts, self.ownership)
            for name in self.facts.connectors
        }

    @classmethod
    def from_config(cls, cfg: Config, config: SessionConfig | None = None) -> Station:
        return cls(StationFacts.from_config(cfg), config or SessionConfig())

    def __getitem__(self, name: str) -> ConnectorSession:
        try:
            return self.sessions[name]
        except KeyError:
            raise SessionError(ErrorCode.INVALID_ARGUMENT, f"no connector named {name!r}") from None

    def step(
        self, now: float, inputs: Mapping[str, ConnectorInputs]
    ) -> dict[str, ConnectorOutputs]:
        """Advance every session; a connector without inputs this tick gets empty inputs
        (chipset not operational), which faults it with chipset_lost."""
        return {
            name: s.step(now, inputs.get(name, ConnectorInputs()))
            for name, s in self.sessions.items()
        }

    def select_configuration(self, config_id: int) -> ContactorConfiguration:
        """Choose the contactor configuration SUP3 allocates from (vendor style)."""
        try:
            conf = self.facts.configuration(config_id)
        except KeyError:
            raise SessionError(
                ErrorCode.INVALID_ARGUMENT, f"no contactor configuration {config_id}"
            ) from None
        self.ownership.selected = conf.id
        return conf

    def owners(self) -> dict[int, str]:
        return dict(self.ownership.owner)

    def states(self) -> dict[str, str]:
        return {name: s.state.value for name, s in self.sessions.items()}

    def connectors(self) -> Iterable[str]:
        return self.sessions.keys()
