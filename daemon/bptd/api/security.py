"""CURVE security for bptd's ZeroMQ sockets.

``ipc://`` (and ``inproc://``) endpoints are protected by the file system (socket mode and
group) and speak plain ZeroMQ. Every other transport (``tcp://`` ...) is only bound with
CURVE keys: the server holds a keypair, clients must know its public key, and an optional
allow-list names the client public keys that may connect.

Keys are Z85 strings (40 characters) or paths to files written by
``zmq.auth.create_certificates``; :func:`load_curve` turns either into a
:class:`CurveConfig` and says clearly what is wrong with a bad one.

Client allow-lists are enforced by one ``zmq.auth.thread.ThreadAuthenticator`` per ZeroMQ
context, shared by every CURVE server socket of that context: each socket gets its own ZAP
domain and the authenticator asks that domain's allow-list. The authenticator stops when
the last socket using it is closed.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from bptd.errors import ConfigError

log = structlog.get_logger(__name__)

KEY_LENGTH = 40  # Z85 of a 32-byte key
SOURCE = "api.curve"
LOCAL_TRANSPORTS = ("ipc://", "inproc://")


@dataclass(frozen=True)
class CurveConfig:
    """The server's CURVE keypair and the client keys it accepts (empty: any client)."""

    secret_key: str = field(repr=False)
    public_key: str
    client_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = [
            p
            for p in (
                _key_problem("secret_key", self.secret_key),
                _key_problem("public_key", self.public_key),
                *(_key_problem(f"client_keys[{i}]", k) for i, k in enumerate(self.client_keys)),
            )
            if p
        ]
        if not problems and zmq.curve_public(self.secret_key.encode()).decode() != self.public_key:
            problems.append("public_key does not belong to secret_key")
        if problems:
            raise ConfigError(SOURCE, problems)


def needs_curve(endpoint: str) -> bool:
    """True for endpoints reachable from other machines (everything but ipc and inproc)."""
    return not endpoint.startswith(LOCAL_TRANSPORTS)


def check_endpoint(endpoint: str, curve: CurveConfig | None) -> CurveConfig | None:
    """The CURVE config to bind ``endpoint`` with: None for ipc; ConfigError for bare tcp."""
    if not needs_curve(endpoint):
        return None
    if curve is None:
        raise ConfigError(
            endpoint,
            [
                "tcp endpoints need CURVE keys (the server's secret and public key, and "
                "optionally the client keys it accepts); use an ipc:// endpoint for local "
                "access, or generate keys with zmq.auth.create_certificates"
            ],
        )
    return curve


def _key_problem(name: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be a string, not {type(value).__name__}"
    if len(value) != KEY_LENGTH:
        return f"{name} must be a {KEY_LENGTH}-character Z85 key, got {len(value)} characters"
    try:
        raw = z85.decode(value)
    except (KeyError, ValueError, TypeError, struct.error):
        return f"{name} is not valid Z85"
    if len(raw) != 32:
        return f"{name} is not a 32-byte key"
    return None


def _from_file(name: str, value: str, secret: bool) -> tuple[str | None, str | None]:
    """(key, problem) for a certificate file written by zmq.auth.create_certificates."""
    try:
        public, secret_key = zmq.auth.load_certificate(value)
    except (OSError, ValueError) as exc:
        return None, f"{name}: cannot read key file {value}: {exc}"
    if secret:
        if secret_key is None:
            return None, f"{name}: {value} holds no secret key (use the .key_secret file)"
        return secret_key.decode(), None
    return public.decode(), None


def load_key(value: str, name: str = "key", secret: bool = False) -> str:
    """A Z85 key given as itself or as a certificate file; ConfigError when it is neither."""
    key, problem = _load_key(name, value, secret)
    if problem or key is None:
        raise ConfigError(SOURCE, [problem or f"{name} is missing"])
    return key


def _load_key(name: str, value: str, secret: bool) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value:
        return None, f"{name} is missing"
    if os.path.isfile(value):
        key, problem = _from_file(name, value, secret)
        if key is not None:
            problem = _key_problem(f"{name} (from {value})", key)
    elif len(value) != KEY_LENGTH:
        shown = f"{len(value)} characters" if secret else repr(value)
        return None, f"{name} is neither a {KEY_LENGTH}-character Z85 key nor a key file: {shown}"
    else:
        key, problem = value, _key_problem(name, value)
    return (None, problem) if problem else (key, None)


def load_curve(
    secret_key: str, public_key: str = "", client_keys: Iterable[str] | str = ()
) -> CurveConfig:
    """Build a :class:`CurveConfig`, every key a Z85 string or a certificate file path.

    ``public_key`` may be empty: it is then derived from the secret key. ``client_keys``
    may also name a directory of ``.key`` files (``zmq.auth.load_certificates``). Every
    problem found is reported in one :class:`ConfigError`.
    """
    problems: list[str] = []
    secret, problem = _load_key("secret_key", secret_key, secret=True)
    if problem:
        problems.append(problem)
    public: str | None = None
    if public_key:
        public, problem = _load_key("public_key", public_key, secret=False)
        if problem:
            problems.append(problem)
    elif secret is not None:
        public = zmq.curve_public(secret.encode()).decode()
    clients: list[str] = []
    items = [client_keys] if isinstance(client_keys, str) else list(client_keys)
    for i, item in enumerate(items):
        name = f"client_keys[{i}]"
        if isinstance(item, str) and os.path.isdir(item):
            try:
                found = zmq.auth.load_certificates(item)
            except (OSError, ValueError) as exc:
                problems.append(f"{name}: cannot read key directory {item}: {exc}")
                continue
            if not found:
                problems.append(f"{name}: no .key files in {item}")
            clients.extend(sorted(k.decode() for k in found))
            continue
        key, problem = _load_key(name, item, secret=False)
        if problem:
            problems.append(problem)
        elif key is not None:
            clients.append(key)
    if problems:
        raise ConfigError(SOURCE, problems)
    assert secret is not None and public is not None
    return CurveConfig(secret_key=secret, public_key=public, client_keys=tuple(clients))


def ephemeral_keypair() -> tuple[str, str]:
    """A fresh (public, secret) Z85 keypair for a client that needs no identity."""
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def apply_client_keys(
    sock: zmq.Socket[Any], server_key: str, client_keys: tuple[str, str] | None = None
) -> tuple[str, str]:
    """Make ``sock`` a CURVE client of the server ``server_key``; returns its (public, secret)."""
    server = load_key(server_key, "server_key")
    public, secret = client_keys if client_keys is not None else ephemeral_keypair()
    problems = [p for p in (_key_problem("client public key", public),) if p]
    problems += [p for p in (_key_problem("client secret key", secret),) if p]
    if problems:
        raise ConfigError(SOURCE, problems)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
    return public, secret


# ---------------------------------------------------------------------- server side


class _AllowLists:
    """The ZAP credentials provider of one context: one allow-list per domain."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.domains: dict[str, frozenset[bytes] | None] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        with self.lock:
            if domain not in self.domains:
                return False
            allowed = self.domains[domain]
        ok = allowed is None or key in allowed
        if not ok:
            log.warning("api_curve_client_refused", domain=domain, client_key=key.decode())
        return ok


class _Zap:
    def __init__(self, context: zmq.Context[Any]) -> None:
        self.allow = _AllowLists()
        self.auth = ThreadAuthenticator(context)
        self.auth.start()


_zap_lock = threading.Lock()
_zaps: dict[int, _Zap] = {}
_domains = itertools.count(1)


class CurveServerGuard:
    """CURVE server settings of one socket, and its place in the context's authenticator."""

    def __init__(self, context: zmq.Context[Any], curve: CurveConfig) -> None:
        self._ctx = context
        self.domain = f"bptd.{os.getpid()}.{next(_domains)}"
        allowed = frozenset(k.encode() for k in curve.client_keys) if curve.client_keys else None
        with _zap_lock:
            zap = _zaps.get(id(context))
            if zap is None:
                zap = _zaps[id(context)] = _Zap(context)
            with zap.allow.lock:
                zap.allow.domains[self.domain] = allowed
            zap.auth.configure_curve_callback(self.domain, zap.allow)
        self.curve = curve
        self._closed = False

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set the server options on ``sock`` (before it binds)."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public_key.encode())
        sock.setsockopt_string(zmq.ZAP_DOMAIN, self.domain)

    def close(self) -> None:
        """Leave the authenticator; the last socket of a context stops it."""
        if self._closed:
            return
        self._closed = True
        with _zap_lock:
            zap = _zaps.get(id(self._ctx))
            if zap is None:
                return
            with zap.allow.lock:
                zap.allow.domains.pop(self.domain, None)
                last = not zap.allow.domains
            zap.auth.credentials_providers.pop(self.domain, None)
            if last:
                del _zaps[id(self._ctx)]
                zap.auth.stop()
