"""CURVE on tcp endpoints: keys, allow-lists, and no tcp without keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from bptd.api import CurveConfig, load_curve
from bptd.api import security as sec
from bptd.api.client import AsyncClient, Client
from bptd.api.protocol import ApiError
from bptd.api.server import CommandServer
from bptd.errors import ConfigError

from .conftest import echo_handler, serving

ANY_TCP = "tcp://127.0.0.1:*"


def keypair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def server_curve(*clients: str) -> CurveConfig:
    public, secret = keypair()
    return CurveConfig(secret_key=secret, public_key=public, client_keys=clients)


def test_an_allow_listed_client_is_served_and_another_key_is_not(ctx: zmq.Context[Any]) -> None:
    allowed, stranger = keypair(), keypair()
    curve = server_curve(allowed[0])
    with serving(ANY_TCP, context=ctx, curve=curve) as server:
        assert server.curve and server.bound_endpoint.startswith("tcp://127.0.0.1:")
        ep = server.bound_endpoint
        with Client(ep, 5.0, ctx, server_key=curve.public_key, client_keys=allowed) as c:
            assert c.call("echo", x=1) == {"x": 1}
            with pytest.raises(ApiError) as err:
                c.call("fail")
            assert err.value.code == "wrong_state"
        with Client(ep, 0.5, ctx, server_key=curve.public_key, client_keys=stranger) as c:
            with pytest.raises(ApiError) as err:
                c.call("ping")
            assert err.value.code == "timeout"
        with Client(ep, 0.5, ctx, server_key=curve.public_key) as c:  # ephemeral key: unlisted
            with pytest.raises(ApiError) as err:
                c.call("ping")
            assert err.value.code == "timeout"
        with Client(ep, 0.5, ctx, server_key=keypair()[0], client_keys=allowed) as c:
            with pytest.raises(ApiError) as err:  # wrong server key: handshake fails
                c.call("ping")
            assert err.value.code == "timeout"
        with Client(ep, 0.5, ctx) as c:  # no CURVE at all
            with pytest.raises(ApiError) as err:
                c.call("ping")
            assert err.value.code == "timeout"
    assert id(ctx) not in sec._zaps  # the authenticator stopped with its last socket


def test_without_client_keys_any_client_knowing_the_server_key_is_served(
    ctx: zmq.Context[Any],
) -> None:
    curve = server_curve()
    with serving(ANY_TCP, context=ctx, curve=curve) as server:
        with Client(server.bound_endpoint, 5.0, ctx, server_key=curve.public_key) as c:
            assert c.call("ping") == {"pong": True}

        async def run() -> Any:
            async with AsyncClient(
                server.bound_endpoint, 5.0, ctx, server_key=curve.public_key
            ) as ac:
                return await ac.call("echo", y=[1, 2])

        assert asyncio.run(run()) == {"y": [1, 2]}


def test_two_curve_sockets_of_one_context_keep_their_own_allow_lists(
    ctx: zmq.Context[Any],
) -> None:
    a, b = keypair(), keypair()
    curve_a, curve_b = server_curve(a[0]), server_curve(b[0])
    with (
        serving(ANY_TCP, context=ctx, curve=curve_a) as sa,
        serving(ANY_TCP, context=ctx, curve=curve_b) as sb,
    ):
        with Client(sa.bound_endpoint, 5.0, ctx, server_key=curve_a.public_key, client_keys=a) as c:
            assert c.call("ping")["pong"]
        with Client(sb.bound_endpoint, 5.0, ctx, server_key=curve_b.public_key, client_keys=b) as c:
            assert c.call("ping")["pong"]
        with Client(sb.bound_endpoint, 0.5, ctx, server_key=curve_b.public_key, client_keys=a) as c:
            with pytest.raises(ApiError) as err:
                c.call("ping")
            assert err.value.code == "timeout"
    assert id(ctx) not in sec._zaps


def test_tcp_without_keys_is_a_config_error_and_ipc_ignores_keys(
    ctx: zmq.Context[Any], ipc_dir: Path
) -> None:
    with pytest.raises(ConfigError, match="tcp endpoints need CURVE keys"):
        CommandServer(ANY_TCP, echo_handler, context=ctx)
    ep = f"ipc://{ipc_dir}/control.sock"
    with serving(ep, context=ctx, curve=server_curve()) as server:
        assert not server.curve
        with Client(ep, 5.0, ctx) as c:
            assert c.call("ping") == {"pong": True}
    assert id(ctx) not in sec._zaps


def test_load_curve_takes_z85_strings_and_certificate_files(tmp_path: Path) -> None:
    server_pub, server_sec = zmq.auth.create_certificates(str(tmp_path), "server")
    clients = tmp_path / "clients"
    clients.mkdir()
    c1, _ = zmq.auth.create_certificates(str(clients), "c1")
    c2, _ = zmq.auth.create_certificates(str(clients), "c2")
    public, secret = zmq.auth.load_certificate(server_sec)
    assert secret is not None

    from_files = load_curve(server_sec, server_pub, [c1])
    assert from_files.public_key == public.decode()
    assert from_files.secret_key == secret.decode()
    assert from_files.client_keys == (zmq.auth.load_certificate(c1)[0].decode(),)

    from_strings = load_curve(secret.decode(), public.decode(), ())
    assert from_strings == CurveConfig(secret.decode(), public.decode(), ())
    assert load_curve(secret.decode()).public_key == public.decode()  # derived
    assert len(load_curve(server_sec, "", [str(clients)]).client_keys) == 2
    assert load_curve(server_sec, client_keys=str(c2)).client_keys == (
        zmq.auth.load_certificate(c2)[0].decode(),
    )
    assert secret.decode() not in repr(from_files)


def test_load_curve_reports_every_bad_key(tmp_path: Path) -> None:
    server_pub, _ = zmq.auth.create_certificates(str(tmp_path), "server")
    with pytest.raises(ConfigError) as err:
        load_curve(server_pub, "short", ["~" * 40, str(tmp_path / "missing.key")])
    text = str(err.value)
    assert "secret_key" in text and "no secret key" in text
    assert "public_key is neither" in text
    assert "client_keys[0] is not valid Z85" in text
    assert "client_keys[1] is neither" in text
    assert len(err.value.problems) == 4

    public, secret = keypair()
    other_public, _ = keypair()
    with pytest.raises(ConfigError, match="does not belong"):
        load_curve(secret, other_public)
    with pytest.raises(ConfigError, match="secret_key is missing"):
        load_curve("")
    with pytest.raises(ConfigError, match="40-character"):
        CurveConfig(secret_key=secret, public_key=public, client_keys=("abc",))
