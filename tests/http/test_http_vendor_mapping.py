"""The vendor fields mapped onto bptd commands (pure: no daemon)."""

from __future__ import annotations

import pytest

from bptd.http.vendor import VendorError, parse_command, parse_limitations, plan

CHARGE = {
    "interface": 2, "request_code": 3, "discharge_compatible": True, "discharge_mode": False,
    "dynamic_mode": True, "imd_external": False, "imd_state": 0,
}  # fmt: skip
DISCHARGE = {**CHARGE, "discharge_mode": True}


def test_limitations_map_onto_set_limits() -> None:
    body = {
        "max_dc_discharge_voltage": 400,
        "max_dc_charge_current": 50,
        "max_ac_charge_current": 100,
        "max_dc_discharge_power": 0,
        "max_dc_charge_power": 0,
        "max_dc_discharge_current": 0,
        "max_dc_charge_voltage": 0,
        "max_ac_discharge_current": 0,
    }  # fmt: skip  (the payload the thesis recorded from the vendor GUI)
    assert parse_limitations(body) == {
        "max_discharge_voltage_v": 400.0, "max_charge_current_a": 50.0,
        "max_ac_charge_current_a": 100.0, "max_discharge_power_w": 0.0,
        "max_charge_power_w": 0.0, "max_discharge_current_a": 0.0,
        "max_charge_voltage_v": 0.0, "max_ac_discharge_current_a": 0.0,
    }  # fmt: skip
    assert parse_limitations({}) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"max_dc_charge_powr": 1}, "unknown field 'max_dc_charge_powr'"),
        ({"max_dc_charge_power": "1000"}, "must be a number"),
        ({"max_dc_charge_power": True}, "must be a number"),
        ({"max_dc_charge_power": -1}, "outside 0..1000000"),
        ({"max_dc_charge_voltage": 1501}, "outside 0..1500"),
    ],
)
def test_bad_limitations_say_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(VendorError, match=message) as err:
        parse_limitations(body)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("body", "message", "status"),
    [
        ({}, "missing field 'request_code'", 400),
        ({"request_code": 8}, "request_code=8 is outside 0..7", 400),
        ({"request_code": 3.0}, "request_code must be an integer", 400),
        ({"request_code": 1, "interface": 3}, "interface=3 is outside 0..2", 400),
        ({"request_code": 1, "dynamic mode": True}, "unknown field 'dynamic mode'", 400),
        ({"request_code": 1, "discharge_mode": 1}, "must be true or false", 400),
        ({**DISCHARGE, "interface": 1}, "discharge_mode needs interface 2", 409),
        ({**DISCHARGE, "discharge_compatible": False}, "discharge_compatible", 409),
    ],
)
def test_bad_commands_say_what_is_wrong(body: object, message: str, status: int) -> None:
    with pytest.raises(VendorError, match=message) as err:
        parse_command(body)
    assert err.value.status == status


def test_sup3_before_energy_allocates_and_starts() -> None:
    steps = plan("chademo", parse_command(CHARGE), {"max_charge_power_w": 6000.0}, "authorized",
                 62500.0)  # fmt: skip
    assert steps == [
        ("set_limits", {"connector": "chademo", "max_charge_power_w": 6000.0}),
        ("setpoint", {"connector": "chademo", "power_w": 6000.0}),
        ("set_mode", {"connector": "chademo", "bidirectional": True, "control": "dynamic"}),
        ("supervisor_request", {"connector": "chademo", "code": 3, "bidirectional": True,
                                "control": "dynamic"}),
    ]  # fmt: skip


def test_sup3_during_transfer_sets_direction_and_power() -> None:
    staged = {"max_charge_power_w": 1000.0, "max_discharge_power_w": 4500.0}
    steps = plan("chademo", parse_command(DISCHARGE), staged, "energy_transfer", 62500.0)
    names = [s[0] for s in steps]
    assert names == ["set_limits", "set_mode", "setpoint"]  # the mode before a discharge
    assert steps[2][1]["power_w"] == -4500.0
    # no staged power limit: as much as the limits allow (the connector's maximum)
    steps = plan("ccs", parse_command(DISCHARGE), {}, "energy_transfer", 62500.0)
    assert steps[-1] == ("setpoint", {"connector": "ccs", "power_w": -62500.0})


def test_sup3_without_dynamic_mode_leaves_the_vehicle_in_charge() -> None:
    cmd = parse_command({"interface": 1, "request_code": 3})
    steps = plan("ccs", cmd, {}, "energy_transfer", 62500.0)
    assert steps == [
        ("set_mode", {"connector": "ccs", "bidirectional": False, "control": "scheduled"})
    ]


@pytest.mark.parametrize("code", [0, 1, 2, 4, 5, 6, 7])
def test_other_codes_are_supervisor_requests(code: int) -> None:
    steps = plan("ccs", parse_command({"request_code": code, "interface": 2}), {"x": 1.0},
                 "energy_transfer", 62500.0)  # fmt: skip
    assert steps == [("supervisor_request", {"connector": "ccs", "code": code})]
