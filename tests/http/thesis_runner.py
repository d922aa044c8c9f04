"""Runs a lab script unchanged: ``python thesis_runner.py SCRIPT``.

- ``RPi.GPIO`` is a recorder: every ``GPIO.output(pin, value)`` prints ``@@gpio PIN VALUE``.
- ``time.sleep`` called by the script itself prints ``@@sleep SECONDS`` and waits for a
  line on stdin: the test decides when the script goes on (after it has seen the station
  follow), so a 30 s wait of the lab costs only as long as the station needs.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
import types

script = os.path.abspath(sys.argv[1])
_real_sleep = time.sleep


def _sleep(seconds: float) -> None:
    if sys._getframe(1).f_code.co_filename == script:
        print(f"@@sleep {seconds}", flush=True)
        if not sys.stdin.readline():
            sys.exit(3)
    else:
        _real_sleep(seconds)


def _gpio() -> types.ModuleType:
    gpio = types.ModuleType("RPi.GPIO")
    gpio.BOARD = 10  # type: ignore[attr-defined]
    gpio.OUT = 0  # type: ignore[attr-defined]
    gpio.setmode = lambda mode: None  # type: ignore[attr-defined]
    gpio.setup = lambda pin, mode: None  # type: ignore[attr-defined]
    gpio.output = lambda pin, value: print(f"@@gpio {pin} {value}", flush=True)  # type: ignore[attr-defined]
    gpio.cleanup = lambda: print("@@gpio cleanup", flush=True)  # type: ignore[attr-defined]
    return gpio


rpi = types.ModuleType("RPi")
rpi.GPIO = _gpio()  # type: ignore[attr-defined]
sys.modules["RPi"] = rpi
sys.modules["RPi.GPIO"] = rpi.GPIO
time.sleep = _sleep
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
