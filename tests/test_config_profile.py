"""Config files and device profiles: good ones load, bad ones are one clear error (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import canopen
import pytest

from bptd.config import load_config, parse_config
from bptd.errors import ConfigError, ProfileError
from bptd.paths import DEFAULT_CONFIG, DEFAULT_PROFILE, EDS_DIR
from bptd.profile import COMMAND, ROLES, STATUS, load_profile


def test_every_eds_loads_with_canopen() -> None:
    files = sorted(EDS_DIR.glob("*.eds"))
    assert {f.name for f in files} == {
        "bptd-chipset.eds",
        "bptd-dcdc.eds",
        "bptd-afe.eds",
        "bptd-supervisor.eds",
    }
    for f in files:
        od = canopen.import_od(str(f), node_id=0x3E)
        for index in (0x1000, 0x1001, 0x1017, 0x1018):
            assert index in od, f"{f.name} lacks 0x{index:04X}"


def test_the_shipped_profile_matches_the_eds() -> None:
    profile = load_profile()
    for kind, names in ROLES.items():
        assert set(profile[kind].objects) == set(names)
    ref = profile.ref("dcdc.dc_current_a")
    assert (ref.index, ref.subindex, ref.scale, ref.role) == (0x2100, 4, 0.1, STATUS)
    assert ref.to_raw(-12.34) == -123 and ref.to_si(-123) == pytest.approx(-12.3)
    assert profile.ref("chipset.contactor_command").role == COMMAND


def test_out_of_range_values_never_wrap(reference_profile: object) -> None:
    ref = load_profile().ref("dcdc.charge_current_limit_a")
    for bad in (-0.1, 7000.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            ref.to_raw(bad)


def test_a_profile_that_does_not_match_its_eds_lists_every_problem(tmp_path: Path) -> None:
    text = DEFAULT_PROFILE.read_text()
    text = text.replace(
        'dc_current_a = "dcdc_status.dc_current_dA"', 'dc_current_a = "dcdc_status.no_such_object"'
    )
    text = text.replace(
        'voltage_setpoint_v = "dcdc_control.dc_voltage_setpoint_dV"',
        'voltage_setpoint_v = "dcdc_status.dc_voltage_dV"',
    )
    text = text.replace('eds = "bptd-afe.eds"', f'eds = "{EDS_DIR}/bptd-afe.eds"')
    bad = tmp_path / "profile.toml"
    bad.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    text_ = str(err.value)
    assert "no_such_object" in text_
    assert "not writable" in text_ and "voltage_setpoint_v" in text_
    assert len(err.value.problems) >= 3  # not writable + not in an RPDO + missing object


def test_reference_config_is_the_reference_station() -> None:
    cfg = load_config()
    assert [(c.name, c.chipset_node_id) for c in cfg.connectors] == [
        ("ccs", 0x10),
        ("chademo", 0x20),
    ]
    assert [(m.n, m.dcdc_node_id, m.afe_node_id) for m in cfg.modules] == [
        (1, 0x3E, 0x5E),
        (2, 0x3F, 0x5F),
    ]
    assert len(cfg.contactor_configurations) == 10
    nine = next(c for c in cfg.contactor_configurations if c.id == 9)
    assert dict(nine.routes) == {"ccs": (2,), "chademo": (1,)}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[can]\nbus = "can0"\n', "not 'interface:channel'"),
        ('[can]\nheartbeat_ms = "fast"\n', "must be an integer"),
        ("[[module]]\nn = 1\ndcdc_node_id = 0x3E\n", "missing required key 'afe_node_id'"),
        ("[stations]\n", "unknown section 'stations'"),
        ("[station]\ncontrol_hz = -5\n", "must be > 0"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_configs_are_clear_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert needle in str(err.value)


def test_node_id_clash_is_found() -> None:
    text = DEFAULT_CONFIG.read_text().replace("afe_node_id = 0x5F", "afe_node_id = 0x10")
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert "already used by connector 'ccs'" in str(err.value)


def _bptd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bptd.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_bad_config_is_one_message_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bptd.toml"
    bad.write_text("[can]\nbus = 'nonsense'\n")
    for cmd in ("check-config", "sim"):
        r = _bptd(cmd, "--config", str(bad))
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"bptd: {bad}: ")
        assert "can.bus: CAN spec 'nonsense' is not 'interface:channel'" in r.stderr
        assert "Traceback" not in r.stderr
    r = _bptd("check-config", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "file not found" in r.stderr


def test_cli_check_config_accepts_the_reference_station() -> None:
    r = _bptd("check-config")
    assert (
        r.returncode == 0
        and "ok (2 connectors, 2 modules, 10 contactor configurations)" in r.stdout
    )
