"""Request / reply format shared by every bptd ZeroMQ command socket.

Request: one JSON object ``{"cmd": "<name>", "id": <any, echoed>, ...args}``.
Reply: ``{"id": ..., "ok": true, "result": {...}}`` or
``{"id": ..., "ok": false, "error": {"code": "<slug>", "message": "<text>"}}``.
Every request gets exactly one reply, also when it is not JSON or not an object.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

from bptd.errors import BptdError


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID_ARGUMENT = "invalid_argument"
    OUT_OF_RANGE = "out_of_range"
    WRONG_STATE = "wrong_state"
    NOT_ALLOWED = "not_allowed"
    HARDWARE = "hardware"
    INTERNAL = "internal"
    TIMEOUT = "timeout"  # client side only: no reply in time


class ApiError(BptdError):
    """A request was refused. ``code`` is one of :class:`ErrorCode`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = ErrorCode(code) if code in ErrorCode._value2member_map_ else code
        self.message = message


MAX_REQUEST_BYTES = 64 * 1024
MAX_DEPTH = 32  # nesting of arrays / objects in a request (no command needs more than 3)


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_request(frame: bytes) -> tuple[Any, dict[str, Any]]:
    """Decode one request frame -> (id, object); raise ApiError(bad_request) otherwise."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise ApiError(ErrorCode.BAD_REQUEST, f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(ErrorCode.BAD_REQUEST, f"request is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ApiError(ErrorCode.BAD_REQUEST, "request must be a JSON object")
    if _depth(obj) > MAX_DEPTH:
        raise ApiError(ErrorCode.BAD_REQUEST, f"request nested deeper than {MAX_DEPTH} levels")
    rid = obj.get("id")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise _WithId(rid, ApiError(ErrorCode.BAD_REQUEST, "request needs a string 'cmd'"))
    return rid, obj


class _WithId(Exception):
    def __init__(self, rid: Any, error: ApiError) -> None:
        self.rid = rid
        self.error = error


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in requests")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def ok_reply(rid: Any, result: Any) -> bytes:
    return json.dumps(
        {"id": _clean(rid), "ok": True, "result": _clean(result)}, allow_nan=False, default=str
    ).encode()


def error_reply(rid: Any, code: str, message: str) -> bytes:
    return json.dumps(
        {"id": _clean(rid), "ok": False, "error": {"code": str(code), "message": message}},
        allow_nan=False,
        default=str,
    ).encode()


def split_request(frame: bytes) -> tuple[Any, dict[str, Any] | None, bytes | None]:
    """(id, request, None) or (id, None, error reply bytes)."""
    try:
        rid, obj = parse_request(frame)
    except _WithId as w:
        return w.rid, None, error_reply(w.rid, w.error.code, w.error.message)
    except ApiError as e:
        return None, None, error_reply(None, e.code, e.message)
    return rid, obj, None
