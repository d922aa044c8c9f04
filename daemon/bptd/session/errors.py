"""Exceptions of the charge-session core.

::

    ApiError (bptd.api.protocol)      a request was refused; carries an API error code
     +-- SessionError                 a session command was refused (code: invalid_argument,
     |                                out_of_range, wrong_state or not_allowed)
    BptdError (bptd.errors)
     +-- TransitionNotAllowed         the machine tried a transition its table does not have
                                      (a bug in bptd, never a user error)

``SessionError`` is an ``ApiError`` so the API server replies with its code unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bptd.api.protocol import ApiError, ErrorCode
from bptd.errors import BptdError

if TYPE_CHECKING:
    from bptd.session.states import State, Trigger


class SessionError(ApiError):
    """A command to a connector session was refused; ``code`` is an :class:`ErrorCode`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)


class TransitionNotAllowed(BptdError):
    """The transition table has no row for ``trigger`` in ``state``."""

    def __init__(self, state: State, trigger: Trigger) -> None:
        super().__init__(f"no transition from {state.value} on {trigger.value}")
        self.state = state
        self.trigger = trigger
