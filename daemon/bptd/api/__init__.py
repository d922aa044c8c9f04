"""The ZeroMQ API: request / reply format, error codes, security and the clients.

- :mod:`bptd.api.protocol`: request / reply format and error codes
- :mod:`bptd.api.server`: the command socket (ROUTER) the daemon and ``bptd sim`` bind
- :mod:`bptd.api.telemetry`: the telemetry socket (PUB) and its subscriber
- :mod:`bptd.api.security`: CURVE keys for ``tcp://`` endpoints
- :mod:`bptd.api.client`: what frontends import (``Client``, ``AsyncClient``, ``Subscriber``)
"""

from bptd.api.protocol import ApiError, ErrorCode
from bptd.api.security import CurveConfig, load_curve

__all__ = ["ApiError", "CurveConfig", "ErrorCode", "load_curve"]
