"""The telemetry PUB socket and its subscriber, over ipc and over tcp with CURVE."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from bptd.api.client import Subscriber
from bptd.api.security import CurveConfig
from bptd.api.telemetry import Publisher, topic_matches, utc_timestamp
from bptd.errors import ConfigError

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def pump(
    pub: Publisher,
    sub: Subscriber,
    messages: list[tuple[str, dict[str, Any]]],
    want: int = 1,
    topic: str | None = None,
    deadline_s: float = 5.0,
) -> list[tuple[str, dict[str, Any]]]:
    """Publish ``messages`` over and over until ``sub`` got ``want`` of them (of ``topic``).

    PUB/SUB joins late: what is published before the subscription is in place is lost.
    """
    got: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        for t, payload in messages:
            pub.publish(t, payload)
        while len(got) < want and (msg := sub.recv(0.02)) is not None:
            if topic is None or msg[0] == topic:
                got.append(msg)
    assert len(got) >= want, f"only {len(got)} of {want} messages within {deadline_s} s"
    return got


def test_a_message_carries_t_and_mono_and_nan_becomes_null(
    ctx: zmq.Context[Any], ipc_dir: Path
) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    with Publisher(ep, context=ctx) as pub, Subscriber(ep, context=ctx) as sub:
        before = time.monotonic()
        payload = {"connector": "ccs", "power_w": math.nan, "limits": {"x": -math.inf}}
        topic, msg = pump(pub, sub, [("connector.ccs", payload)])[0]
        assert topic == "connector.ccs"
        assert msg["connector"] == "ccs"
        assert msg["power_w"] is None and msg["limits"] == {"x": None}
        assert ISO_MS.match(msg["t"]), msg["t"]
        assert before <= msg["mono"] <= time.monotonic()
        assert pub.sent >= 1 and pub.dropped == 0
        # a payload with its own time stamps keeps them
        own = {"kind": "x", "t": "2020-01-01T00:00:00.000Z", "mono": 1.5}
        topic, msg = pump(pub, sub, [("event", own)], topic="event")[0]
        assert (msg["t"], msg["mono"]) == (own["t"], own["mono"])
    assert payload["power_w"] != payload["power_w"]  # the caller's dict is left as it was


def test_topics_filter_by_name_and_dotted_children(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    messages = [
        ("module.12", {"module": 12}),
        ("connector.ccs", {"connector": "ccs"}),
        ("module.1", {"module": 1}),
        ("event", {"kind": "state"}),
        ("station", {"nodes": 6}),
    ]
    with (
        Publisher(ep, context=ctx) as pub,
        Subscriber(ep, ("module.1", "event"), context=ctx) as sub,
    ):
        got = pump(pub, sub, messages, want=20)
        assert {topic for topic, _ in got} == {"module.1", "event"}
        assert sub.received == len(got)
    with Publisher(ep, context=ctx) as pub, Subscriber(ep, ("connector",), context=ctx) as sub:
        got = pump(pub, sub, messages, want=5)
        assert {topic for topic, _ in got} == {"connector.ccs"}


def test_topic_matching_rules() -> None:
    assert topic_matches("connector.ccs", ["connector"])
    assert topic_matches("connector.ccs", ["connector."])
    assert topic_matches("connector.ccs", [""])
    assert not topic_matches("connectors", ["connector"])
    assert not topic_matches("module.12", ["module.1"])
    assert topic_matches("module.1", ["station", "module.1"])


def test_recv_times_out_and_iteration_stops(ctx: zmq.Context[Any], ipc_dir: Path) -> None:
    ep = f"ipc://{ipc_dir}/telemetry.sock"
    with Publisher(ep, context=ctx), Subscriber(ep, context=ctx) as sub:
        t0 = time.monotonic()
        assert sub.recv(0.1) is None
        assert time.monotonic() - t0 >= 0.09
        assert list(sub.messages(timeout_s=0.05)) == []
    with pytest.raises(RuntimeError):
        sub.recv(0)


def test_utc_timestamp_has_milliseconds() -> None:
    assert utc_timestamp(0.9996) == "1970-01-01T00:00:00.999Z"
    assert utc_timestamp(86400.5) == "1970-01-02T00:00:00.500Z"


def test_curve_telemetry_over_tcp(ctx: zmq.Context[Any]) -> None:
    public, secret = (k.decode() for k in zmq.curve_keypair())
    curve = CurveConfig(secret_key=secret, public_key=public)
    with pytest.raises(ConfigError, match="tcp endpoints need CURVE keys"):
        Publisher("tcp://127.0.0.1:*", context=ctx)
    with Publisher("tcp://127.0.0.1:*", context=ctx, curve=curve) as pub:
        ep = pub.bound_endpoint
        with Subscriber(ep, ("station",), context=ctx, server_key=public) as sub:
            topic, msg = pump(pub, sub, [("station", {"nodes": 6})])[0]
            assert topic == "station" and msg["nodes"] == 6
        with Subscriber(ep, context=ctx) as plain:  # no key: never gets anything
            for _ in range(20):
                pub.publish("station", {"nodes": 6})
            assert plain.recv(0.3) is None
