"""The virtual station: chipsets, power modules and vehicles as peers on a CAN bus.

Each device is a ``canopen.LocalNode`` built from the same EDS the daemon uses
(:mod:`bptd.sim.node`), driven by a physical model (:mod:`bptd.sim.module`,
:mod:`bptd.sim.chipset`, :mod:`bptd.sim.vehicle`, tied together by
:mod:`bptd.sim.plant`). :class:`bptd.sim.station.VirtualStation` runs them on a bus;
the daemon cannot tell it from hardware.
"""

from bptd.sim.station import VirtualStation

__all__ = ["VirtualStation"]
