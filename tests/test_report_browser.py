"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``.ci/run``) must draw every plot, with no console errors.

A screenshot is kept in ``test-artifacts/report.png``. Outside CI the test is skipped when
Chromium is not installed; in CI (``CI=true``) a missing browser fails it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.ci import require

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    require(bool(CHROMIUM and DRIVER), "chromium / chromedriver not installed (apt-get install "
            "chromium chromium-driver)")  # fmt: skip
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="edgeslim-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--window-size=1400,2400",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


PLOT_SIZES = """
return [...document.querySelectorAll('.js-plotly-plot')].map((el) => {
  const box = el.getBoundingClientRect();
  return {id: el.id, width: box.width, height: box.height,
          marks: el.querySelectorAll('.point, .trace, .bars path, .parcoords').length};
});
"""


@pytest.mark.slow
def test_report_draws_every_plot_without_console_errors(first_run, browser):
    _, outcome, _ = first_run
    browser.get(outcome.reports["html"].resolve().as_uri())
    browser.execute_script("return document.readyState")  # page and inline scripts done
    plots = {p["id"]: p for p in browser.execute_script(PLOT_SIZES)}
    assert set(plots) >= {"pareto-0", "pareto-1", "pareto-2", "parallel", "layers"}
    for plot in plots.values():
        assert plot["width"] > 100 and plot["height"] > 100, plot
        assert plot["marks"] > 0, plot  # something was drawn in it
    rows = browser.execute_script("return document.querySelectorAll('#candidates tbody tr').length")
    assert rows == len(outcome.records)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report.png"))


def test_the_table_sorts_when_a_header_is_clicked(first_run, browser):
    _, outcome, _ = first_run
    browser.get(outcome.reports["html"].resolve().as_uri())
    column = browser.execute_script(
        "return [...document.querySelectorAll('#candidates th')]"
        ".findIndex((th) => th.textContent.startsWith('storage_kb'))"
    )
    assert column > 0
    browser.execute_script(f"document.querySelectorAll('#candidates th')[{column}].click()")
    names = browser.execute_script(
        "return [...document.querySelectorAll('#candidates tbody tr')]"
        ".map((tr) => tr.cells[0].textContent.replace('✓ ', ''))"
    )
    measured = sorted(
        (r for r in outcome.records if "storage_kb" in r), key=lambda r: r["storage_kb"]
    )
    assert names[: len(measured)] == [r["name"] for r in measured]


VERDICT = """
const pre = document.querySelector('#recommendation pre');
const box = pre.getBoundingClientRect();
const line = parseFloat(getComputedStyle(pre).lineHeight) || 16;
return {text: pre.innerText, scroll: pre.scrollWidth, client: pre.clientWidth,
        lines: Math.round(box.height / line), right: box.right, page: window.innerWidth};
"""


@pytest.mark.slow
def test_the_recommendation_wraps_and_is_never_cut(first_run, browser):
    """At a phone's width the summary's lines wrap inside their box: nothing runs past it, and
    every runner-up is there to read."""
    _, outcome, _ = first_run
    browser.set_window_size(420, 1600)
    browser.get(outcome.reports["html"].resolve().as_uri())
    verdict = browser.execute_script(VERDICT)
    summary = outcome.selection.summary()
    assert verdict["text"].strip() == summary.strip()
    assert verdict["scroll"] <= verdict["client"] + 1, verdict  # wrapped, not overflowing
    assert verdict["right"] <= verdict["page"], verdict
    assert verdict["lines"] > len(summary.splitlines()), verdict  # some line did wrap
    for other in outcome.selection.runner_ups:
        assert other["name"] in verdict["text"]


@pytest.mark.slow
def test_the_trade_off_points_carry_their_names(first_run, browser):
    _, outcome, _ = first_run
    browser.get(outcome.reports["html"].resolve().as_uri())
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#pareto-0 .textpoint')].map((t) => t.textContent)"
    )
    measured = {r["name"] for r in outcome.selection.measured}
    assert set(labels) == measured
