"""The REST API over real HTTP: authentication, clear 4xx refusals, a session driven by REST
commands with its power seen on the server-sent event stream."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from http_rig import Http

from station_rig import Station


def error(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()["error"]
    assert body["code"] == code, body
    assert body["message"]
    return str(body["message"])


def test_writes_need_credentials_reads_do_not(station: Station, http: Http) -> None:
    assert http.get("/api/ping").json()["pong"] is True
    assert http.get("/api/status", params={"connector": "ccs"}).json()["state"] == "idle"
    r = http.post("/api/set_limits", {"connector": "ccs", "max_charge_power_w": 1000}, auth=None)
    assert "credentials" in error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = http.post("/api/set_limits", {"connector": "ccs", "max_charge_power_w": 1000},
                  auth=("lab", "wrong"))  # fmt: skip
    error(r, 401, "unauthorized")
    r = http.put("/supervisor/secc/EVIS_A_CCS/update/command", {"request_code": 1}, auth=None)
    error(r, 401, "unauthorized")
    r = requests.post(http.url("/api/stop"), json={"connector": "ccs"}, timeout=5,
                      headers={"Authorization": "Basic !!notbase64"})  # fmt: skip
    error(r, 401, "unauthorized")
    assert station.call("status", connector="ccs")["user_limits"]["max_charge_power_w"] is None
    r = http.post("/api/set_limits", {"connector": "ccs", "max_charge_power_w": 1000})
    assert r.status_code == 200 and r.json()["limits"]["max_charge_power_w"] == 1000.0
    assert "cmd=set_limits" in http.output() and "user=lab" in http.output()


Send = Callable[[Http], requests.Response]
#: (request, status, code, part of the message)
BAD: list[tuple[Send, int, str, str]] = [
    (lambda h: h.post("/api/setpoint", None, data="{nope"), 400, "bad_request", "not JSON"),
    (lambda h: h.post("/api/setpoint", None, data='{"connector": "ccs", "power_w": NaN}'),
     400, "bad_request", "not JSON"),
    (lambda h: h.post("/api/setpoint", [1, 2]), 400, "bad_request", "JSON object"),
    (lambda h: h.post("/api/setpoint", {"connector": "ccs"}), 400, "invalid_argument",
     "missing argument 'power_w'"),
    (lambda h: h.post("/api/setpoint", {"connector": "ccs", "power_w": 2e6}), 400,
     "out_of_range", "outside"),
    (lambda h: h.post("/api/setpoint", {"connector": "nope", "power_w": 1}), 400,
     "invalid_argument", "nope"),
    (lambda h: h.post("/api/setpoint", {"connector": "ccs", "power_w": 1, "cmd": "stop"}),
     400, "invalid_argument", "named by the path"),
    (lambda h: h.post("/api/start", {"connector": "ccs"}), 409, "wrong_state", "idle"),
    (lambda h: h.post("/api/stop", {"connector": "ccs", "self": 1, "user": "x"}), 400,
     "invalid_argument", "unknown argument"),
    (lambda h: h.post("/api/frobnicate", {}), 404, "unknown_command", "frobnicate"),
    (lambda h: h.get("/api/stop"), 405, "bad_request", "allowed: POST"),
    (lambda h: h.get("/api/sessions", params={"limit": "many"}), 400, "invalid_argument",
     "integer"),
    (lambda h: h.get("/api/history", params={"connector": "x"}), 400, "invalid_argument",
     "unknown connector"),
    (lambda h: h.get("/nothing/here"), 404, "bad_request", "no such resource"),
    (lambda h: h.post("/api/setpoint", None, data="[" * 70000), 413, "too_large", "larger"),
    (lambda h: h.put("/supervisor/secc/EVIS_C/update/command", {"request_code": 1}), 404,
     "invalid_argument", "unknown SECC 'EVIS_C'"),
    (lambda h: h.put("/supervisor/secc/EVIS_A_CCS/update/other", {}), 404, "bad_request",
     "limitations or command"),
    (lambda h: h.put("/supervisor/secc/EVIS_A_CCS/update/command", {"request_code": 9}),
     400, "invalid_argument", "outside 0..7"),
    (lambda h: h.put("/supervisor/secc/EVIS_A_CCS/update/command", {"request_code": 4}),
     409, "wrong_state", "supervisor_request"),
    (lambda h: h.put("/supervisor/secc/EVIS_A_CCS/update/limitations", None, data=""),
     400, "bad_request", "JSON object"),

]  # fmt: skip


def test_bad_requests_get_a_4xx_with_a_clear_message(station: Station, http: Http) -> None:
    for send, status, code, message in BAD:
        text = error(send(http), status, code)
        assert message in text, text
    assert "http_internal_error" not in http.output()
    assert station.call("status", connector="ccs")["state"] == "idle"
    # `id` is an argument of select_configuration (and its request id, as on the socket)
    r = http.post("/api/select_configuration", {"id": 2})
    assert r.status_code == 200 and r.json()["name"] == "SERIES_CCS1", r.text


def events(http: Http, topics: str, timeout_s: float) -> Any:
    """The server-sent events of ``/api/events`` as (topic, payload)."""
    with requests.get(http.url("/api/events"), params={"topics": topics}, stream=True,
                      timeout=timeout_s) as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                msg = json.loads(line[len("data: ") :])
                yield msg["topic"], msg["payload"]


def first(
    stream: Any, pred: Callable[[str, dict[str, Any]], bool], timeout_s: float, what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    for topic, payload in stream:
        if pred(topic, payload):
            return payload
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no event with {what} in {timeout_s} s")


def test_rest_session_with_server_sent_telemetry(station: Station, http: Http) -> None:
    station.plug("ccs", "bpt", soc=0.4)
    for cmd, args in (
        ("authorize", {}),
        ("allocate", {"modules": [1, 2], "topology": "parallel"}),
        ("set_mode", {"bidirectional": True}),
        ("start", {}),
    ):
        r = http.post(f"/api/{cmd}", {"connector": "ccs", **args})
        assert r.status_code == 200, r.text
    stream = events(http, "connector.ccs,event", 60.0)
    first(stream, lambda t, p: t == "connector.ccs" and p["state"] == "energy_transfer", 30.0,
          "energy transfer")  # fmt: skip
    assert http.post("/api/setpoint", {"connector": "ccs", "power_w": -9000}).status_code == 200
    p = first(stream, lambda t, p: t == "connector.ccs" and (p["power_w"] or 0) < -8500, 20.0,
              "-9 kW")  # fmt: skip
    assert p["limits"]["binding_discharge"]
    h = http.get("/api/history", params={"connector": "ccs", "seconds": 60}).json()
    assert h["fields"][:2] == ["mono", "power_w"]
    assert min(point[1] for point in h["points"]) < -8500
    assert http.post("/api/stop", {"connector": "ccs"}).status_code == 200
    station.wait_state("ccs", "finished", 20.0)


def test_read_auth_protects_reads_too(station: Station, tmp_path: Path) -> None:
    front = Http(station, tmp_path, read_auth=True)
    front.proc = None
    # started by hand: the rig's readiness probe reads without credentials
    args = [sys.executable, "-m", "bptd.http", "--config", str(front.config), "--control",
            station.control, "--telemetry", station.telemetry_endpoint]  # fmt: skip
    with open(front.log, "ab") as fh:
        front.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(front.url("/api/ping"), timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, front.output()
                time.sleep(0.05)  # polling interval of the wait above
        error(r, 401, "unauthorized")
        assert requests.get(front.url("/"), timeout=5).status_code == 401
        assert requests.get(front.url("/api/ping"), auth=front.auth, timeout=5).status_code == 200
    finally:
        assert front.stop() == 0


def test_port_in_use_exits_2(station: Station, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "bptd.http", "--port", str(port), "--control",
             station.control, "--telemetry", station.telemetry_endpoint],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert res.returncode == 2, res
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
