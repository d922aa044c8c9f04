"""Which connector owns which module, validated against the contactor configurations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bptd.api.protocol import ErrorCode
from bptd.config import TOPOLOGIES, ContactorConfiguration
from bptd.session.config import StationFacts
from bptd.session.errors import SessionError


@dataclass(frozen=True)
class Allocation:
    connector: str
    modules: tuple[int, ...]
    topology: str
    configuration: int  # id of the contactor configuration that serves it
    configuration_name: str

    @property
    def series_count(self) -> int:
        """Modules in one string: the output voltage splits over this many."""
        return len(self.modules) if self.topology == "series" else 1


@dataclass
class ModuleOwnership:
    facts: StationFacts
    owner: dict[int, str] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    selected: int | None = None  # configuration SUP3 allocates from

    def validate(self, connector: str, modules: object, topology: object) -> Allocation:
        """Check an allocation request; return what it would be. Raises SessionError."""
        if connector not in self.facts.connectors:
            raise SessionError(ErrorCode.INVALID_ARGUMENT, f"no connector named {connector!r}")
        if topology not in TOPOLOGIES:
            raise SessionError(
                ErrorCode.INVALID_ARGUMENT, f"topology must be one of {', '.join(TOPOLOGIES)}"
            )
        if (
            not isinstance(modules, list | tuple)
            or not modules
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in modules)
        ):
            raise SessionError(
                ErrorCode.INVALID_ARGUMENT, "modules must be a non-empty list of module numbers"
            )
        wanted = tuple(sorted(set(modules)))
        if len(wanted) != len(modules):
            raise SessionError(ErrorCode.INVALID_ARGUMENT, "a module is listed twice")
        unknown = [n for n in wanted if n not in self.facts.modules]
        if unknown:
            raise SessionError(ErrorCode.INVALID_ARGUMENT, f"no module {unknown[0]} here")
        taken = {n: self.owner[n] for n in wanted if self.owner.get(n, connector) != connector}
        if taken:
            n, who = next(iter(taken.items()))
            raise SessionError(ErrorCode.NOT_ALLOWED, f"module {n} belongs to connector {who}")
        conf = self._match(connector, wanted, str(topology))
        if conf is None:
            raise SessionError(
                ErrorCode.NOT_ALLOWED,
                f"no contactor configuration routes modules {list(wanted)} in {topology} to "
                f"{connector} together with the other connectors' allocations",
            )
        return Allocation(connector, wanted, conf.topology, conf.id, conf.name)

    def _match(
        self, connector: str, modules: tuple[int, ...], topology: str
    ) -> ContactorConfiguration | None:
        wanted = {c: a for c, a in self.allocations.items() if c != connector}
        users = {connector, *wanted}
        fits: list[ContactorConfiguration] = []
        for conf in self.facts.configurations:
            if conf.topology != topology and len(modules) > 1:
                continue
            if tuple(sorted(conf.routes.get(connector, ()))) != modules:
                continue
            if all(
                tuple(sorted(conf.routes.get(c, ()))) == a.modules
                and (conf.topology == a.topology or len(a.modules) == 1)
                for c, a in wanted.items()
            ):
                fits.append(conf)
        exact = [c for c in fits if set(c.routes) == users]
        return (exact or fits or [None])[0]

    def claim(self, allocation: Allocation) -> None:
        self.release(allocation.connector)
        for name, other in self.allocations.items():  # one configuration serves them all
            self.allocations[name] = dataclasses.replace(
                other,
                configuration=allocation.configuration,
                configuration_name=allocation.configuration_name,
            )
        self.allocations[allocation.connector] = allocation
        for n in allocation.modules:
            self.owner[n] = allocation.connector

    def release(self, connector: str) -> None:
        old = self.allocations.pop(connector, None)
        if old is not None:
            for n in old.modules:
                if self.owner.get(n) == connector:
                    del self.owner[n]

    def sup3_request(self, connector: str) -> tuple[tuple[int, ...], str]:
        """The modules and topology SUP3 allocates: the selected configuration's route
        for this connector, else the first configuration whose modules are all free."""
        confs = self.facts.configurations
        if self.selected is not None:
            conf = self.facts.configuration(self.selected)
            route = conf.routes.get(connector)
            if not route:
                raise SessionError(
                    ErrorCode.NOT_ALLOWED,
                    f"contactor configuration {conf.id} ({conf.name}) serves no {connector}",
                )
            return tuple(route), conf.topology
        for conf in confs:
            route = conf.routes.get(connector)
            if route and all(self.owner.get(n, connector) == connector for n in route):
                return tuple(route), conf.topology
        raise SessionError(ErrorCode.NOT_ALLOWED, f"no free modules for {connector}")
