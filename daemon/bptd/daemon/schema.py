"""Argument schemas of the API commands: every request is checked here before it acts.

A schema is a mapping of argument name -> :class:`Arg`. :func:`validate` returns the
arguments with their types normalised (ints given as numbers stay numbers, floats are
``float``) or raises :class:`~bptd.api.protocol.ApiError`:

- ``invalid_argument``: unknown argument, missing required argument, wrong type, NaN or
  infinity, a string not among the choices;
- ``out_of_range``: a number outside ``[min, max]`` (the message names the range).

Clamping to *station* limits is not done here: the handlers clamp against the config and
report the effective value. The range here is the plausible range of the quantity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bptd.api.protocol import ApiError, ErrorCode

Kind = Literal["str", "number", "int", "bool", "int_list", "any"]
RESERVED = frozenset({"cmd", "id"})


@dataclass(frozen=True)
class Arg:
    kind: Kind
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] | None = None
    nullable: bool = False  # ``null`` accepted (e.g. "clear this limit")
    doc: str = ""


Schema = Mapping[str, Arg]


def _bad(message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_ARGUMENT, message)


def _number(name: str, value: Any, arg: Arg) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name} must be a number, not {type(value).__name__}")
    if isinstance(value, int) and abs(value) > 2**53:
        raise ApiError(ErrorCode.OUT_OF_RANGE, f"{name} is out of range")
    v = float(value)
    if not math.isfinite(v):
        raise _bad(f"{name} must be a finite number")
    _range(name, v, arg)
    return v


def _range(name: str, v: float, arg: Arg) -> None:
    lo = -math.inf if arg.min is None else arg.min
    hi = math.inf if arg.max is None else arg.max
    if not lo <= v <= hi:
        raise ApiError(ErrorCode.OUT_OF_RANGE, f"{name}={v:g} is outside {lo:g}..{hi:g}")


def _one(name: str, value: Any, arg: Arg) -> Any:
    if value is None:
        if arg.nullable:
            return None
        raise _bad(f"{name} must not be null")
    if arg.kind == "any":
        return value
    if arg.kind == "str":
        if not isinstance(value, str):
            raise _bad(f"{name} must be a string, not {type(value).__name__}")
        if arg.choices is not None and value not in arg.choices:
            raise _bad(f"{name} must be one of {', '.join(arg.choices)}; got {value[:40]!r}")
        return value
    if arg.kind == "bool":
        if not isinstance(value, bool):
            raise _bad(f"{name} must be true or false")
        return value
    if arg.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _bad(f"{name} must be an integer")
        _number(name, value, arg)  # also refuses ints beyond 2**53 (no float overflow)
        return int(value)
    if arg.kind == "int_list":
        if not isinstance(value, list) or len(value) > 64:
            raise _bad(f"{name} must be a list of integers")
        return [_one(f"{name}[{i}]", v, Arg("int", min=arg.min, max=arg.max))
                for i, v in enumerate(value)]  # fmt: skip
    return _number(name, value, arg)


def validate(cmd: str, request: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """Checked arguments of ``request`` (without ``cmd`` / ``id``), or raise ApiError."""
    unknown = [k for k in request if k not in RESERVED and k not in schema]
    if unknown:
        known = ", ".join(schema) or "none"
        raise _bad(f"{cmd}: unknown argument {str(unknown[0])[:40]!r}; arguments: {known}")
    out: dict[str, Any] = {}
    for name, arg in schema.items():
        if name not in request:
            if arg.required:
                raise _bad(f"{cmd}: missing argument {name!r}")
            continue
        out[name] = _one(name, request[name], arg)
    return out


def describe(schema: Schema) -> dict[str, Any]:
    """The schema as plain data (for the ``commands`` command and the docs)."""
    out: dict[str, Any] = {}
    for name, a in schema.items():
        d: dict[str, Any] = {"type": a.kind, "required": a.required}
        if a.min is not None:
            d["min"] = a.min
        if a.max is not None:
            d["max"] = a.max
        if a.choices is not None:
            d["choices"] = list(a.choices)
        if a.nullable:
            d["nullable"] = True
        if a.doc:
            d["doc"] = a.doc
        out[name] = d
    return out
