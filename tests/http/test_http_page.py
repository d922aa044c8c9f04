"""The station page in headless Chromium (Debian's chromium and chromedriver, driven by
selenium): a session started with the page's controls, the power plot moving, the state
changing; a screenshot is saved with the test's output."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from http_rig import PASSWORD, USER, Http
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from station_rig import Station

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (tools/setup.d/http.sh)",
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1300", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def output_dir() -> Path:
    """tests/out/http (git ignores tests/out), or $BPTD_TEST_OUTPUT/http when set."""
    base = os.environ.get("BPTD_TEST_OUTPUT")
    out = (Path(base) if base else Path(__file__).resolve().parents[1] / "out") / "http"
    out.mkdir(parents=True, exist_ok=True)
    return out


def wait_for(driver: WebDriver, what: str, cond: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(lambda _: cond())
    except WebDriverException as exc:
        text = driver.find_element(By.ID, "result").text
        raise AssertionError(f"page: no {what} in {timeout_s} s; last command: {text}") from exc


def test_page_drives_a_session(
    station: Station, http: Http, browser: WebDriver, tmp_path: Path
) -> None:
    station.plug("ccs", "bpt", soc=0.4)
    browser.get(http.url("/"))
    state = lambda: browser.find_element(By.ID, "state-ccs").get_attribute("data-state")  # noqa: E731
    power = lambda: browser.find_element(By.ID, "p-ccs").get_attribute("data-value")  # noqa: E731
    wait_for(browser, "page ready", lambda: browser.find_element(By.TAG_NAME, "body")
             .get_attribute("data-ready") == "true")  # fmt: skip
    wait_for(browser, "state connected", lambda: state() == "connected")
    wait_for(browser, "live telemetry", lambda: browser.find_element(By.ID, "link").text == "live")
    rows = browser.find_elements(By.CSS_SELECTOR, "#modules tbody tr")
    assert [r.get_attribute("id") for r in rows] == ["module-1", "module-2"]

    card = browser.find_element(By.ID, "connector-ccs")

    def click(action: str) -> None:
        card.find_element(By.CSS_SELECTOR, f"button[data-action='{action}']").click()

    # a write without credentials is refused, and says so
    click("authorize")
    wait_for(
        browser, "refusal", lambda: "unauthorized" in browser.find_element(By.ID, "result").text
    )
    assert station.call("status", connector="ccs")["state"] == "connected"

    browser.find_element(By.ID, "login-user").send_keys(USER)
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-use").click()
    click("authorize")
    wait_for(browser, "state authorized", lambda: state() == "authorized")
    click("allocate")
    wait_for(browser, "state allocated", lambda: state() == "allocated")
    wait_for(browser, "bidirectional mode", lambda: "set_mode: ok" in browser.find_element(
        By.ID, "result").text)  # fmt: skip
    click("start")
    wait_for(browser, "energy transfer", lambda: state() == "energy_transfer", 45.0)

    plot = browser.find_element(By.ID, "plot-ccs")
    before = browser.execute_script("return arguments[0].toDataURL()", plot)
    setpoint = card.find_element(By.CSS_SELECTOR, "input.setpoint")
    setpoint.clear()
    setpoint.send_keys("10")
    Select(card.find_element(By.CSS_SELECTOR, "select.direction")).select_by_value("charge")
    click("setpoint")
    wait_for(browser, "+10 kW", lambda: float(power() or 0) > 9000)
    wait_for(browser, "the plot at +10 kW",
             lambda: float(plot.get_attribute("data-last-power-w") or 0) > 9000)  # fmt: skip
    assert browser.execute_script("return arguments[0].toDataURL()", plot) != before

    setpoint.clear()
    setpoint.send_keys("8")
    Select(card.find_element(By.CSS_SELECTOR, "select.direction")).select_by_value("discharge")
    click("setpoint")
    wait_for(browser, "-8 kW", lambda: float(power() or 0) < -7000)
    wait_for(browser, "the plot at -8 kW",
             lambda: float(plot.get_attribute("data-last-power-w") or 0) < -7000)  # fmt: skip
    text = card.text
    assert "discharge limit" in text and "(" in text  # limits with their binding constraint
    events = browser.find_element(By.ID, "events").text
    assert "energy_transfer" in events, events
    shot = output_dir() / "station-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000

    click("stop")
    wait_for(browser, "state finished", lambda: state() == "finished", 30.0)
    assert station.call("status", connector="ccs")["state"] == "finished"

    # everything the page loaded came from bptd-http itself
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert urls and all(u.startswith(http.base) for u in urls), urls
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "401" not in e["message"]]  # fmt: skip
    assert not errors, errors
