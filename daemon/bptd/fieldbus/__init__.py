"""The fieldbus edge of the daemon: the CANopen master of the station.

- :mod:`~bptd.fieldbus.master`: :class:`Fieldbus`, the facade the control loop uses;
- :mod:`~bptd.fieldbus.nodes`: node states and the per-node model;
- :mod:`~bptd.fieldbus.boot`: the CiA 302-style boot of one node (worker thread);
- :mod:`~bptd.fieldbus.supervision`: heartbeat consumer and bus-health rules;
- :mod:`~bptd.fieldbus.emcy`: EMCY decoding;
- :mod:`~bptd.fieldbus.pdo`: TPDO decoding, RPDO staging and timing;
- :mod:`~bptd.fieldbus.sdo`: SDO access with one lock per node;
- :mod:`~bptd.fieldbus.link`: one bus connection (network, supervisor node, listeners);
- :mod:`~bptd.fieldbus.errors`: SDO abort codes and the exceptions.

See docs/fieldbus.md.
"""

from bptd.fieldbus.errors import NodeUnavailableError, SdoAbortError, SdoTimeoutError
from bptd.fieldbus.events import (
    BusFault,
    BusRecovered,
    BusWarning,
    EmcyReceived,
    FieldbusEvent,
    NodeStateChanged,
)
from bptd.fieldbus.master import Fieldbus
from bptd.fieldbus.nodes import Identity, NodeState, NodeStatus
from bptd.fieldbus.pdo import StatusValues

__all__ = [
    "BusFault",
    "BusRecovered",
    "BusWarning",
    "EmcyReceived",
    "Fieldbus",
    "FieldbusEvent",
    "Identity",
    "NodeState",
    "NodeStateChanged",
    "NodeStatus",
    "NodeUnavailableError",
    "SdoAbortError",
    "SdoTimeoutError",
    "StatusValues",
]
