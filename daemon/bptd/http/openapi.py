"""The OpenAPI document of bptd-http, generated from the daemon's own command table (the
``commands`` command: every argument's type, range and choices), so it never restates them.
"""

from __future__ import annotations

from typing import Any

from bptd import __version__
from bptd.http.vendor import COMMAND_FIELDS, LIMITS, REQUEST_CODES

#: commands that only read: served as GET with query parameters (and as POST)
READS = ("ping", "status", "config", "commands", "sessions", "hlc_status")

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
STATUS_TEXT = {
    "400": "bad request: not JSON, unknown or mistyped argument, value out of range",
    "401": "credentials needed (HTTP Basic)",
    "403": "refused by policy (not_allowed)",
    "404": "unknown command, connector or SECC id",
    "409": "the command does not fit the present state (wrong_state)",
    "413": "request body too large",
    "502": "a device refused or did not answer (hardware), or bptd failed (internal)",
    "503": "bptd did not answer in time",
}


def arg_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of one argument as ``commands`` describes it."""
    kind = spec.get("type")
    out: dict[str, Any]
    if kind == "str":
        out = {"type": "string"}
        if spec.get("choices"):
            out["enum"] = list(spec["choices"])
    elif kind in ("number", "int"):
        out = {"type": "number" if kind == "number" else "integer"}
        if "min" in spec:
            out["minimum"] = spec["min"]
        if "max" in spec:
            out["maximum"] = spec["max"]
    elif kind == "bool":
        out = {"type": "boolean"}
    elif kind == "int_list":
        item: dict[str, Any] = {"type": "integer"}
        if "min" in spec:
            item["minimum"] = spec["min"]
        if "max" in spec:
            item["maximum"] = spec["max"]
        out = {"type": "array", "items": item, "maxItems": 64}
    else:
        out = {}
    if spec.get("nullable") and out:
        out["nullable"] = True
    if spec.get("doc"):
        out["description"] = spec["doc"]
    return out


def named(
    name: str, spec: dict[str, Any], station: dict[str, Any], cmd: str = ""
) -> dict[str, Any]:
    """:func:`arg_schema`, narrowed by the station: connector names, module numbers,
    contactor configuration ids (``sessions`` filters by any name: not narrowed)."""
    out = arg_schema(spec)
    narrow = cmd != "sessions" and spec.get("type") == "str" and station.get("connectors")
    if name == "connector" and narrow:
        out["enum"] = list(station["connectors"])
    configuration = (cmd == "select_configuration" and name == "id") or name == "configuration"
    if configuration and spec.get("type") == "int" and station.get("configurations"):
        out["enum"] = list(station["configurations"])
        out.pop("minimum", None)
        out.pop("maximum", None)
    if name == "n" and spec.get("type") == "int" and station.get("modules"):
        out["minimum"] = min(station["modules"])
        out["maximum"] = max(station["modules"])
    return out


def body_schema(
    arguments: dict[str, Any], station: dict[str, Any], cmd: str = ""
) -> dict[str, Any]:
    free = "*" in arguments
    props = {k: named(k, v, station, cmd) for k, v in arguments.items() if k != "*"}
    required = [k for k, v in arguments.items() if k != "*" and v.get("required")]
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = free
    return schema


def _responses(ok: str, *codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": {}}}}
    }
    for code in codes:
        out[code] = {
            "description": STATUS_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def document(
    commands: dict[str, Any], secc: dict[str, str], station: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.0 document for the daemon's ``commands`` result; ``station`` gives the
    connector names and module numbers (``{"connectors": [...], "modules": [...]}``)."""
    station = station or {}
    paths: dict[str, Any] = {}
    errors = ("400", "401", "403", "404", "409", "413", "502", "503")
    for name, spec in sorted(commands.items()):
        arguments = spec.get("arguments", {})
        doc = spec.get("doc") or f"the `{name}` command"
        item: dict[str, Any] = {
            "post": {
                "operationId": f"post_{name}",
                "summary": doc,
                "description": f"Sends `{name}` to bptd with the body as its arguments "
                "(docs/api.md). Needs credentials.",
                "tags": ["commands"],
                "security": [{"basic": []}],
                "requestBody": {
                    "required": bool(arguments)
                    and any(v.get("required") for v in arguments.values()),
                    "content": {
                        "application/json": {"schema": body_schema(arguments, station, name)}
                    },
                },
                "responses": _responses("the command's result", *errors),
            }
        }
        if name in READS:
            params = [
                {
                    "name": k,
                    "in": "query",
                    "required": bool(v.get("required")),
                    "schema": {
                        kk: vv for kk, vv in named(k, v, station, name).items() if kk != "nullable"
                    },
                }
                for k, v in arguments.items()
                if k != "*"
            ]
            item["get"] = {
                "operationId": f"get_{name}",
                "summary": doc,
                "tags": ["reads"],
                "parameters": params,
                "responses": _responses("the command's result", "400", "401", "404", "503"),
            }
        paths[f"/api/{name}"] = item
    paths["/api/history"] = {
        "get": {
            "operationId": "history",
            "summary": "measured P / V / I of one connector over the last seconds",
            "tags": ["reads"],
            "parameters": [
                {
                    "name": "connector",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {
                    "name": "seconds",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 1, "maximum": 86400},
                },
            ],
            "responses": _responses(
                "{connector, points: [[mono, P, V, I, setpoint], ...]}", "400", "401", "404"
            ),
        }
    }
    paths["/api/events"] = {
        "get": {
            "operationId": "events",
            "summary": "telemetry as server-sent events (each data line: {topic, payload})",
            "tags": ["reads"],
            "parameters": [
                {
                    "name": "topics",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "comma-separated topic prefixes (default: all)",
                },
            ],
            "responses": {
                "200": {
                    "description": "event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": _responses("", "401")["401"],
            },
            "x-stream": True,
        }
    }
    secc_param = {
        "name": "secc",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": sorted(secc)},
        "description": "vendor SECC id: " + ", ".join(f"{k} = {v}" for k, v in secc.items()),
    }
    limits_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            k: {
                "type": "number",
                "minimum": 0,
                "maximum": {"v": 1500, "a": 2000, "w": 1e6}[v[-1]],
                "description": f"bptd set_limits {v}",
            }
            for k, v in LIMITS.items()
        },
    }
    cmd_props: dict[str, Any] = {}
    for k, (kind, lo, hi) in COMMAND_FIELDS.items():
        cmd_props[k] = (
            {"type": "boolean"}
            if kind == "bool"
            else {"type": "integer", "minimum": lo, "maximum": hi}
        )
    cmd_props["request_code"]["description"] = ", ".join(
        f"{i} {n}" for i, n in enumerate(REQUEST_CODES)
    )
    vendor_errors = ("400", "401", "403", "404", "409", "413", "502", "503")
    for leaf, schema, summary in (
        ("limitations", limits_schema, "stage limits (applied by request code 3)"),
        (
            "command",
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["request_code"],
                "properties": cmd_props,
            },
            "send a request code SUP0..SUP7 with interface, direction and mode",
        ),
    ):
        paths[f"/supervisor/secc/{{secc}}/update/{leaf}"] = {
            "put": {
                "operationId": f"vendor_{leaf}",
                "summary": summary,
                "tags": ["vendor"],
                "security": [{"basic": []}],
                "parameters": [secc_param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": _responses("accepted", *vendor_errors),
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "bptd-http",
            "version": __version__,
            "description": "The vendor supervisor's REST paths and a REST mirror of bptd's "
            "ZeroMQ commands (docs/http.md, docs/api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
    }
