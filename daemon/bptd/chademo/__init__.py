"""CHAdeMO: the charger side of the protocol on its own CAN bus, as an ``hlc`` frontend.

- :mod:`bptd.chademo.frames`: the frames from our DBC (``dbc/chademo.dbc``), both sides.
- :mod:`bptd.chademo.protocol`: :class:`ChargerProtocol`, the charger's sequence as a pure
  state machine (vehicle frames and the daemon's report in, charger frames, d1 / d2 and
  ``hlc_update`` fields out).
- :mod:`bptd.chademo.driver`: :class:`ChademoCharger`, the thread that runs it on a CAN bus
  every 100 ms and talks to the daemon only through ``hlc_update`` / ``hlc_status`` /
  ``hlc_end`` (``bptd chademo`` on the command line).
- :mod:`bptd.chademo.pins`: the d1 / d2 sequence signals.

See docs/chademo.md.
"""

from bptd.chademo.driver import ChademoCharger
from bptd.chademo.protocol import ChademoConfig, ChargerProtocol, Output, Stage

__all__ = ["ChademoCharger", "ChademoConfig", "ChargerProtocol", "Output", "Stage"]
