"""The eval report opened in a real headless Chromium: no console errors, the plots render,
the drill-down filter works, and a screenshot is kept for humans to look at; the steer sweep
report opened the same way.

Needs Debian's ``chromium`` and ``chromium-driver``. Runs fully offline: the driver is given
explicitly, so selenium-manager never tries to download anything.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from personae.report import write_report
from personae.report.sweep import write_sweep_report
from tests.report.test_sweep_report import COEFS, sweep_summary

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report" / "summary.json"
INSTALL_HINT = "install Debian packages `chromium chromium-driver` (apt-get install chromium " \
               "chromium-driver) to run the browser tests"


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never go online
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"selenium is not installed ({exc}); pip install selenium and {INSTALL_HINT}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail(f"chromium={chromium!r}, chromedriver={chromedriver!r}: {INSTALL_HINT}")

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run",
                "--window-size=1280,4000", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        drv.set_window_size(1280, 4000)
        yield drv
    finally:
        drv.quit()


def open_report(driver: WebDriver, path: Path, kind: str) -> None:
    """Open the report at ``path`` and check it loaded as a ``personae <kind> report`` with
    no console errors (script errors, blocked or failed loads) and nothing fetched from
    anywhere but the file itself."""
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title.startswith(f"personae {kind} report")
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls == [], urls


@pytest.fixture
def report(tmp_path: Path) -> Path:
    summary = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return write_report(summary, tmp_path / "run")


def test_report_in_headless_chromium(driver: WebDriver, report: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    open_report(driver, report, "eval")

    # The banner is visible and at the top of the page.
    banner = driver.find_element(By.ID, "verdict")
    assert banner.is_displayed()
    assert "UNRELIABLE" in banner.text
    assert banner.rect["y"] < 800

    # Every plot renders with a real size.
    svgs = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.is_displayed()
        assert svg.size["width"] > 200 and svg.size["height"] > 100, svg.size
        # and draws something: its bounding box of drawn content is non-empty
        bbox = driver.execute_script("const b = arguments[0].getBBox(); "
                                     "return [b.width, b.height];", svg)
        assert bbox[0] > 100 and bbox[1] > 50, bbox

    # The drill-down filter hides non-matching rows.
    rows = driver.find_elements(By.CSS_SELECTOR, "#records tbody tr.record")
    assert len(rows) == 8 and all(r.is_displayed() for r in rows)
    box = driver.find_element(By.ID, "record-filter")
    box.send_keys("Lars Eriksen")
    shown = [r for r in rows if r.is_displayed()]
    assert len(shown) == 3
    assert all("Lars Eriksen" in r.text for r in shown)
    hidden = [r for r in rows if not r.is_displayed()]
    assert hidden and all("Lars Eriksen" not in r.get_attribute("textContent") for r in hidden)
    assert driver.find_element(By.ID, "record-count").text == "3 of 8 records shown"

    # Combined with the condition selector; then no match at all.
    box.clear()
    box.send_keys("maya")
    Select(driver.find_element(By.ID, "record-condition")).select_by_value("assistant")
    shown = [r for r in rows if r.is_displayed()]
    assert len(shown) == 1 and "assistant" in shown[0].text
    box.send_keys(" zzz-no-such-text")
    assert not any(r.is_displayed() for r in rows)
    assert driver.find_element(By.ID, "no-match").is_displayed()

    # Reset, open one raw judgement, and take the screenshot for humans.
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)  # fires "input", unlike clear()
    Select(driver.find_element(By.ID, "record-condition")).select_by_value("")
    assert all(r.is_displayed() for r in rows)
    details = driver.find_element(By.CSS_SELECTOR, "#records details")
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.find_element(By.CSS_SELECTOR, "pre.raw").is_displayed()
    driver.execute_script("window.scrollTo(0, 0)")
    # Tall enough for the whole page, so the screenshot shows everything.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(4000, height + 200), 16000))

    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("PERSONAE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(keep) / "report.png")

    assert not [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_minimal_report_in_headless_chromium(driver: WebDriver, tmp_path: Path) -> None:
    """A run with nothing but its facts still opens cleanly."""
    from selenium.webdriver.common.by import By

    summary = json.loads(FIXTURE.read_text(encoding="utf-8"))
    path = write_report({"schema_version": 1, "run": summary["run"], "records": []},
                        tmp_path / "run")
    driver.get(path.as_uri())
    assert not [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert driver.find_elements(By.CSS_SELECTOR, "svg") == []
    assert "not run" in driver.find_element(By.ID, "fidelity").text
    assert "not checked" in driver.find_element(By.ID, "verdict").text


def test_sweep_report_in_headless_chromium(driver: WebDriver, tmp_path: Path) -> None:
    """The steer sweep report: no console errors, nothing fetched, the plot drawn, one
    table row per coefficient and one verdict per measure."""
    from selenium.webdriver.common.by import By

    summary = sweep_summary(tmp_path, vector="vectors/<script>alert(1)</script>.safetensors")
    open_report(driver, write_sweep_report(summary, tmp_path / "run")["html"], "steer sweep")

    svgs = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(svgs) == 1 and svgs[0].is_displayed()
    assert svgs[0].size["width"] > 300 and svgs[0].size["height"] > 100, svgs[0].size
    rows = driver.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr")
    assert len(rows) == len(COEFS) and all(r.is_displayed() for r in rows)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#verdict-list li")) == 4
    assert "<script>" in driver.find_element(By.ID, "run-facts").text  # shown, not run
    assert driver.find_element(By.ID, "warnings").is_displayed()
    assert not [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
