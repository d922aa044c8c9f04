"""The aiohttp application: vendor paths, the REST mirror of the commands, the OpenAPI
document, telemetry as server-sent events, and the station page."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from bptd.api.client import ApiError
from bptd.http import openapi
from bptd.http.link import Link, topic_matches
from bptd.http.passwords import Verifier
from bptd.http.settings import Settings
from bptd.http.vendor import VendorError, parse_command, parse_limitations, plan

log = structlog.get_logger("bptd.http")

MAX_BODY = 64 * 1024
#: bptd error code -> HTTP status
STATUS = {
    "bad_request": 400,
    "invalid_argument": 400,
    "out_of_range": 400,
    "unknown_command": 404,
    "wrong_state": 409,
    "not_allowed": 403,
    "hardware": 502,
    "internal": 502,
    "timeout": 503,
}
REALM = 'Basic realm="bptd", charset="UTF-8"'
STATIC = Path(str(resources.files("bptd.http") / "static"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request, *, empty: Any = None) -> Any:
    """The request body as JSON (NaN / Infinity refused); ``empty`` for an empty body."""
    raw = await request.read()
    if not raw.strip():
        if empty is None:
            raise HttpError(400, "bad_request", "the body must be a JSON object")
        return empty
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HttpError(400, "bad_request", f"the body is not JSON: {str(exc)[:120]}") from None


class Api:
    """The state of one bptd-http process: settings, the link to bptd, the credentials."""

    def __init__(self, settings: Settings, link: Link) -> None:
        self.settings = settings
        self.link = link
        self.verifier = Verifier(settings.users)
        self.commands: dict[str, Any] = {}
        self.connectors: dict[str, dict[str, Any]] = {}
        self.document: dict[str, Any] = {}
        self.staged: dict[str, dict[str, float]] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def load(self) -> None:
        """The command table and the station config from bptd (after it answered a ping)."""
        self.commands = await self.link.call("commands")
        config = await self.link.call("config")
        self.connectors = {c["name"]: c for c in config.get("connectors", [])}
        status = await self.link.call("status")
        modules = sorted(int(n) for n in status.get("modules", {}))
        configurations = sorted(
            int(c["id"]) for c in config.get("contactor_configurations", []) if "id" in c
        )
        station = {
            "connectors": list(self.connectors),
            "modules": modules,
            "configurations": configurations,
        }
        self.document = openapi.document(self.commands, self.settings.secc, station)

    # ------------------------------------------------------------------ auth
    async def user(self, request: web.Request) -> str | None:
        """The authenticated user, or None when the request carries no valid credentials."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, ValueError):
            return None
        if not sep:
            return None
        known = self.verifier.known(user, password)
        if known is None:
            known = await asyncio.to_thread(self.verifier.verify, user, password)
        return user if known else None

    # ------------------------------------------------------------------ commands
    async def call(self, cmd: str, user: str | None, args: dict[str, Any]) -> Any:
        try:
            result = await self.link.command(cmd, args)
        except ApiError as exc:
            log.info(
                "http_command",
                cmd=cmd,
                user=user,
                ok=False,
                error_code=str(exc.code),
                error=exc.message,
                **_brief(args),
            )
            raise HttpError(STATUS.get(str(exc.code), 502), str(exc.code), exc.message) from None
        if cmd not in openapi.READS:
            log.info("http_command", cmd=cmd, user=user, ok=True, **_brief(args))
        return result


def _brief(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k in ("connector", "power_w", "code", "modules", "n")}


API_KEY: web.AppKey[Api] = web.AppKey("api", Api)


def _api(request: web.Request) -> Api:
    return request.app[API_KEY]


# ---------------------------------------------------------------------- middleware
def allowed(api: Api, path: str) -> str:
    """The methods a path takes (the ``Allow`` header of a 405)."""
    if path.startswith("/api/"):
        name = path[len("/api/") :]
        if name in ("history", "events") or name in openapi.READS:
            return "GET, HEAD" + (", POST" if name in openapi.READS else "")
        return "POST"
    if path.startswith("/supervisor/"):
        return "PUT"
    return "GET, HEAD"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as a JSON error with a 4xx status and a clear message."""
    try:
        return await handler(request)
    except HttpError as exc:
        headers = {"WWW-Authenticate": REALM} if exc.status == 401 else {}
        if exc.status == 401 and request.headers.get("X-Requested-With") == "bptd-page":
            headers = {}  # the page asks for credentials itself (no browser dialog)
        return error_response(exc.status, exc.code, exc.message, **headers)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow: dict[str, str] = {}
        if exc.status == 405:
            allow = {"Allow": ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))}
            allow = {"Allow": allowed(_api(request), request.path)}
        message = {
            404: f"no such resource: {request.method} {request.path[:200]} (see /openapi.json)",
            405: f"{request.method} is not allowed on {request.path[:200]}; "
            f"allowed: {allow.get('Allow', '')}",
        }.get(exc.status, exc.reason)
        return error_response(exc.status, "bad_request", message, **allow)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("http_internal_error", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error (logged)")


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Writes need credentials; reads too with ``read_auth``."""
    api = _api(request)
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    if write or api.settings.read_auth:
        user = await api.user(request)
        if user is None:
            if not api.verifier.users:
                raise HttpError(
                    401,
                    "unauthorized",
                    "no users are configured: writes are refused "
                    "(add [http.users], see docs/http.md)",
                )
            raise HttpError(401, "unauthorized", "valid credentials (HTTP Basic) are needed")
        request["user"] = user
    return await handler(request)


# ---------------------------------------------------------------------- handlers
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(_api(request).document)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def _query_args(api: Api, name: str, request: web.Request) -> dict[str, Any]:
    spec = api.commands[name].get("arguments", {})
    args: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise HttpError(400, "invalid_argument", f"{key[:40]!r} is given more than once")
        value = values[0]
        kind = spec.get(key, {}).get("type", "str")
        if kind == "int":
            try:
                args[key] = int(value)
            except ValueError:
                raise HttpError(400, "invalid_argument", f"{key} must be an integer") from None
        elif kind == "number":
            try:
                args[key] = float(value)
            except ValueError:
                raise HttpError(400, "invalid_argument", f"{key} must be a number") from None
        elif kind == "bool":
            if value not in ("true", "false"):
                raise HttpError(400, "invalid_argument", f"{key} must be true or false")
            args[key] = value == "true"
        else:
            args[key] = value
    return args


def _command_name(api: Api, request: web.Request) -> str:
    name = request.match_info["cmd"]
    if name in ("history", "events"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    if name not in api.commands:
        raise HttpError(
            404, "unknown_command", f"unknown command {name[:60]!r}; GET /api/commands lists them"
        )
    return name


async def get_command(request: web.Request) -> web.Response:
    api = _api(request)
    name = _command_name(api, request)
    if name not in openapi.READS:
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    args = _query_args(api, name, request)
    return web.json_response(await api.call(name, request.get("user"), args))


async def post_command(request: web.Request) -> web.Response:
    api = _api(request)
    name = _command_name(api, request)
    body = await read_json(request, empty={})
    if not isinstance(body, dict):
        raise HttpError(400, "bad_request", "the body must be a JSON object of arguments")
    for reserved in ("cmd", "id"):
        if reserved in body and reserved not in api.commands[name].get("arguments", {}):
            raise HttpError(
                400,
                "invalid_argument",
                f"{reserved!r} is not an argument here: the command is named by the path",
            )
    return web.json_response(await api.call(name, request.get("user"), body))


async def history(request: web.Request) -> web.Response:
    api = _api(request)
    name = request.query.get("connector", "")
    if not name:
        raise HttpError(400, "invalid_argument", "connector is required")
    if name not in api.connectors:
        raise HttpError(400, "invalid_argument", f"unknown connector {name[:40]!r}")
    try:
        seconds = float(request.query.get("seconds", api.settings.history_s))
    except ValueError:
        raise HttpError(400, "invalid_argument", "seconds must be a number") from None
    if not 1 <= seconds <= 86400:
        raise HttpError(400, "out_of_range", "seconds must be within 1..86400")
    return web.json_response(
        {
            "connector": name,
            "fields": ["mono", "power_w", "voltage_v", "current_a", "setpoint_w"],
            "points": api.link.points(name, seconds),
        }
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every telemetry message as ``data: {"topic", "payload"}``; first
    the latest message of each selected topic."""
    api = _api(request)
    prefixes = tuple(t.strip() for t in request.query.get("topics", "").split(",") if t.strip())
    prefixes = prefixes or ("",)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    listener = api.link.listen(prefixes)
    try:
        for topic, payload in list(api.link.latest.items()):
            if topic_matches(topic, prefixes):
                await resp.write(_sse(topic, payload))
        while True:
            try:
                item = await asyncio.wait_for(listener.queue.get(), 15.0)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if item is None:
                break
            topic, payload = item
            if topic_matches(topic, prefixes):
                await resp.write(_sse(topic, payload))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        api.link.unlisten(listener)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


def _sse(topic: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps({"topic": topic, "payload": payload}, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def vendor_update(request: web.Request) -> web.Response:
    api = _api(request)
    secc = request.match_info["secc"]
    leaf = request.match_info["leaf"]
    if leaf not in ("limitations", "command"):
        raise HttpError(404, "bad_request", f"unknown update {leaf[:40]!r}: limitations or command")
    connector = api.settings.secc.get(secc)
    if connector is None:
        known = ", ".join(api.settings.secc)
        raise HttpError(404, "invalid_argument", f"unknown SECC {secc[:40]!r}; known: {known}")
    if connector not in api.connectors:
        raise HttpError(
            404, "invalid_argument", f"SECC {secc} maps to {connector!r}, which this station lacks"
        )
    body = await read_json(request)
    user = request.get("user")
    lock = api.locks.setdefault(connector, asyncio.Lock())
    async with lock:
        try:
            if leaf == "limitations":
                limits = parse_limitations(body)
                api.staged.setdefault(connector, {}).update(limits)
                log.info(
                    "vendor_request", secc=secc, update=leaf, user=user, ok=True, staged=limits
                )
                return web.json_response(
                    {
                        "secc": secc,
                        "connector": connector,
                        "staged": api.staged[connector],
                        "applied_by": "request_code 3",
                    }
                )
            cmd = parse_command(body)
        except VendorError as exc:
            log.info(
                "vendor_request", secc=secc, update=leaf, user=user, ok=False, error=exc.message
            )
            raise HttpError(exc.status, "invalid_argument", exc.message) from None
        status = await api.call("status", user, {"connector": connector})
        max_power = float(api.connectors[connector].get("max_power_w") or 0.0)
        steps = plan(
            connector, cmd, dict(api.staged.get(connector, {})), status["state"], max_power
        )
        applied = []
        try:
            for name, args in steps:
                applied.append({"cmd": name, "result": await api.call(name, user, args)})
        except HttpError as exc:
            log.info(
                "vendor_request",
                secc=secc,
                update=leaf,
                user=user,
                ok=False,
                request_code=cmd.request_code,
                failed=steps[len(applied)][0],
                error_code=exc.code,
            )
            exc.message = f"{steps[len(applied)][0]}: {exc.message}"
            raise
        log.info(
            "vendor_request",
            secc=secc,
            update=leaf,
            user=user,
            ok=True,
            request_code=cmd.request_code,
            steps=[s[0] for s in steps],
        )
        return web.json_response(
            {
                "secc": secc,
                "connector": connector,
                "request_code": cmd.request_code,
                "applied": applied,
            }
        )


# ---------------------------------------------------------------------- the app
def make_app(api: Api) -> web.Application:
    app = web.Application(middlewares=[errors, auth], client_max_size=MAX_BODY)
    app[API_KEY] = api
    app.router.add_get("/", index)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/{cmd}", get_command)
    app.router.add_post("/api/{cmd}", post_command)
    app.router.add_put("/supervisor/secc/{secc}/update/{leaf}", vendor_update)
    app.router.add_static("/static/", STATIC, show_index=False)

    async def on_shutdown(app: web.Application) -> None:
        api.link.close_listeners()

    app.on_shutdown.append(on_shutdown)
    return app
