"""The simulate report as HTML: run facts, drift plots and tables, transcripts, escaping,
nulls, determinism; and once in a real headless Chromium."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from personae.report import plots, write_simulate_report
from personae.report.simulate import (
    MAX_GROUPS,
    fmt_first,
    fmt_slope,
    metric_range,
    render_simulate_html,
)
from tests.report.test_browser import (  # the headless Chromium fixture
    driver,
    open_report,
)
from tests.report.test_html import parse, section

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report" / "simulate_summary.json"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def summary() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture
def page(summary: dict[str, Any]) -> str:
    return render_simulate_html(summary)


def articles(page: str) -> list[str]:
    return re.findall(r'<article class="group"[^>]*>(.*?)</article>', page, re.DOTALL)


def turns(page: str) -> list[tuple[str, str]]:
    """``(class attribute, inner html)`` of every chat turn, in page order."""
    return re.findall(r'<li class="(turn[^"]*)">(.*?)</li>', page, re.DOTALL)


def tone_by_metric(article: str) -> dict[str, str]:
    """Metric label → the class of its sign cell ("bad", "good" or "")."""
    return dict(re.findall(r'</span>([^<]+)</td><td class="num">.*?</td><td class="(\w*)">',
                           article))


def test_run_facts_and_warnings(page: str, summary: dict[str, Any]) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>personae simulate report · runs/simulate-2025-03-14-mechanics</title>" in page
    facts = re.search(r'<dl class="facts" id="run-facts">(.*?)</dl>', page, re.DOTALL)
    assert facts
    pairs = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", facts.group(1)))
    assert pairs["Turn policy"] == "round-robin" and pairs["Mode"] == "pairs"
    assert pairs["Conversations"] == "2 finished of 2"
    assert pairs["Stop reasons"] == "max_turns 1, end_signal 1"  # a zero count is left out
    assert pairs["Duration"] == "3 min 05 s"
    assert '<div class="bad"><dt>Failed calls</dt><dd>1</dd>' in page
    warnings = section(page, "warnings")
    for w in summary["warnings"]:
        assert w in warnings
    # Warnings come before the results.
    assert page.index('id="warnings"') < page.index('id="drift"') < page.index('id="transcripts"')


def test_drift_plots_and_tables(page: str) -> None:
    groups = articles(page)
    assert len(groups) == 2
    chinedu, amaka = groups
    assert "Chinedu (persona)" in chinedu and "chinedu-enugu-mechanic" in chinedu
    assert chinedu.count("<svg") == 1 and amaka.count("<svg") == 1
    assert 'aria-label="Metrics by turn: Chinedu (persona)"' in chinedu
    # Slope with CI, n and clusters, in the metric's own units, with a typographic minus.
    assert "−0.33 [−0.58, −0.08] n=7, 2 conversations" in chinedu
    assert "−0.065 [−0.130, 0.001] n=8, 2 conversations" in chinedu  # small: 3 decimals
    rows = tone_by_metric(chinedu)
    # Falling fidelity is bad; an unclear slope has no colour.
    assert rows["Rubric fidelity (judge, 1–5)"] == "bad"
    assert rows["Similarity to the persona (cosine)"] == ""
    assert rows["System-prompt leak (0/1)"] == ""
    # Rising echo is bad, because lower is better for it.
    amaka_rows = tone_by_metric(amaka)
    assert amaka_rows["Echo of the other speaker (0–1)"] == "bad"
    # First turn past the threshold, and the group's first out-of-persona turn.
    assert "turn 3 (median; 1 of 2 conversations)" in chinedu
    assert "never (0 of 2 conversations)" in chinedu  # echo never crossed 0.6
    assert re.search(r"Persona-vector projection</td>.*?<td>—</td>", chinedu, re.DOTALL)
    assert ('first-out">turn 3 (median; 1 of 2 conversations)</strong> '
            "(per conversation: never, 3)") in chinedu
    assert 'first-out">never (0 of 2 conversations)' in amaka
    # Plots share the page without id clashes.
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_metric_legend_table(page: str) -> None:
    table = re.search(r'<table id="metrics-table">(.*?)</table>', page, re.DOTALL)
    assert table
    text = table.group(1)
    assert text.index("fidelity") < text.index("consistency") < text.index("projection")
    assert "1.00 – 5.00" in text and "−1.00 – 1.00" in text
    assert "none (raw units)" in text  # projection has no range


def test_transcripts(page: str) -> None:
    body = section(page, "transcripts")
    assert "2 of 2 conversations shown" in body
    assert body.count('<details class="conversation"') == 2
    assert "stopped: <span class=\"stop\">max_turns</span>" in body
    assert "stopped: <span class=\"stop\">end_signal</span>" in body
    all_turns = turns(page)
    assert len(all_turns) == 16
    classes = [c for c, _ in all_turns]
    # Only Chinedu's 3rd and 4th turns of c0002 are out of persona; the 3rd leaked.
    assert classes[13] == "turn out-of-persona leak"
    assert classes[15] == "turn out-of-persona"
    assert all("out-of-persona" not in c for i, c in enumerate(classes) if i not in (13, 15))
    assert all("leak" not in c for i, c in enumerate(classes) if i != 13)
    assert "⚑ first out-of-persona turn" in all_turns[13][1]
    assert "⚑ out of persona since turn 3" in all_turns[15][1]
    assert '<span class="badge bad" title="System-prompt leak (0/1)">leak 1</span>' \
        in all_turns[13][1]
    # A missing judge score is a dash; the speaker's own turn number is shown.
    assert ">fidelity —<" in all_turns[15][1]
    assert "turn 4 · #7 · 2.95 s" in all_turns[15][1]
    assert all_turns[0][0] == "turn user"
    # Line breaks inside a turn survive as text, shown with pre-wrap.
    assert "trust.\n\nIf the discs are scored" in all_turns[5][1]
    assert ".say { white-space: pre-wrap;" in page


def test_hostile_text_is_escaped(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    conv = s["conversations"][0]
    conv["turns"][1]["text"] = f"Sure! {HOSTILE} <img src=x onerror=alert(2)>"
    conv["turns"][1]["name"] = f"Eve {HOSTILE}"
    conv["turns"][1]["metrics"][HOSTILE] = 1.0
    conv["agents"][0]["name"] = f'"><{HOSTILE}'
    conv["stop_reason"] = HOSTILE
    conv["id"] = f"</details>{HOSTILE}"
    s["groups"][0]["label"] = f"Eve $x$ {HOSTILE} -->"
    s["metrics"][0]["label"] = f"fid {HOSTILE} $"
    s["warnings"].append(f"warning {HOSTILE}")
    s["run"]["run_dir"] = f"</title>{HOSTILE}"
    s["run"]["stop_reasons"][HOSTILE] = 2
    page = render_simulate_html(s)
    assert HOSTILE not in page
    assert "<img src=x" not in page
    assert "<script" not in page  # the page has no script of its own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert page.count("</title>") == 1 and page.count("</details>") == 2
    # The escaped text reads back as the original.
    assert f"Sure! {HOSTILE}" in " ".join(parse(page).text)


def test_missing_and_null_fields() -> None:
    for summary in ({}, {"run": None, "groups": None, "conversations": None, "metrics": None,
                         "warnings": None}):
        page = render_simulate_html(summary)
        assert "No agents with drift metrics in this run." in page
        assert "No conversations." in page
        assert "<svg" not in page and 'id="warnings"' not in page
        assert ">None<" not in page
    # Every number null, curve points without values, turns without metrics or names.
    null_slope = {"value": None, "ci_low": None, "ci_high": None, "n": None, "clusters": None,
                  "method": None, "sign": None}
    page = render_simulate_html({
        "run": {"counts": None, "duration_s": math.nan, "stop_reasons": None, "judge": None},
        "metrics": [{"id": "fidelity", "label": None, "range": [1, 5], "threshold": None,
                     "higher_is_better": None}, None],
        "groups": [{"id": "g", "metrics": {"fidelity": {
            "curve": [{"turn": 1, "value": None}, {"turn": None, "value": 3.0}, None],
            "slope": null_slope, "first_past": None}},
            "first_out_of_persona": None}, None],
        "conversations": [{"id": None, "turns": [{"speaker": "a", "text": None,
                                                  "metrics": None}, None],
                           "agents": None, "first_out_of_persona": None}],
        "conversations_shown": None, "conversations_total": None,
    })
    assert "No values to plot." in page  # no point has both a turn and a value
    drift = articles(page)
    assert len(drift) == 2
    assert "fidelity</td><td class=\"num\">—</td><td class=\"\">unknown</td><td>—</td>" \
        in drift[0]
    assert "1 of — conversations shown" in page
    assert len(turns(page)) == 2
    text = " ".join(parse(page).text)
    assert "None" not in text and "nan" not in text.lower()


def test_group_with_no_metrics(summary: dict[str, Any]) -> None:
    summary["groups"].append({"id": "quiet", "label": "Quiet agent", "role": "persona",
                              "n_conversations": 1, "metrics": {},
                              "first_out_of_persona": {"turns": [None], "median": None,
                                                       "n_crossed": 0, "n": 1}})
    page = render_simulate_html(summary)
    groups = articles(page)
    assert len(groups) == 3
    assert "No metric values for this agent." in groups[2]
    assert "<svg" not in groups[2] and "<table" not in groups[2]
    assert "never (0 of 1 conversations)" in groups[2]
    assert page.count("<svg") == 2


def test_groups_capped(summary: dict[str, Any]) -> None:
    base = summary["groups"][1]
    summary["groups"] = [{**base, "label": f"Agent {i}", "metrics": {}} for i in range(14)]
    page = render_simulate_html(summary)
    assert len(articles(page)) == MAX_GROUPS == 12
    assert "Agent 11" in page and "Agent 12" not in page
    assert "2 more agents not shown" in page


def test_deterministic_output(summary: dict[str, Any]) -> None:
    first = render_simulate_html(summary)
    assert render_simulate_html(copy.deepcopy(summary)) == first


def test_write_simulate_report(summary: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    path = write_simulate_report(summary, out)
    assert path == out / "report.html"
    assert path.read_text(encoding="utf-8") == render_simulate_html(summary)
    assert [p.name for p in out.iterdir()] == ["report.html"]  # no temporary file left
    with pytest.raises(TypeError, match="mapping"):
        render_simulate_html([])  # type: ignore[arg-type]


def curve(values: list[float | None], width: float = 0.0) -> list[dict[str, Any]]:
    return [{"turn": k + 1, "value": v, "ci_low": None if v is None else v - width,
             "ci_high": None if v is None else v + width, "n": 2} for k, v in enumerate(values)]


def test_drift_curves_rescale_to_the_metric_range() -> None:
    def draw(values: list[float | None], width: float, bounds: Any, threshold: float) -> Any:
        return plots.drift_curves_svg([("m", "#1f77b4", curve(values, width))],
                                      ranges={"m": bounds}, thresholds={"m": threshold},
                                      title="t", salt="s")

    # A 1–5 metric at 1, 3, 5 (CI ±0.4, threshold 3) is drawn exactly like a 0–1 metric at
    # 0, 0.5, 1 (CI ±0.1, threshold 0.5).
    on_five = draw([1.0, 3.0, 5.0], 0.4, (1, 5), 3.0)
    assert on_five is not None and "<path" in on_five
    assert on_five == draw([0.0, 0.5, 1.0], 0.1, (0, 1), 0.5)
    assert on_five != draw([0.0, 0.5, 1.0], 0.1, (0, 2), 0.5)
    # Without a range the metric is drawn in raw units (a different figure).
    assert on_five != draw([1.0, 3.0, 5.0], 0.4, None, 3.0)
    assert draw([None, None], 0.0, (1, 5), 3.0) is None
    assert plots.drift_curves_svg([], ranges={}, thresholds={}, title="t", salt="s") is None


def test_drift_curves_two_panels_and_gaps() -> None:
    one = plots.drift_curves_svg([("a", "#1f77b4", curve([0.2, None, 0.4]))],
                                 ranges={"a": (0, 1)}, thresholds={}, title="t", salt="s")
    two = plots.drift_curves_svg([("a", "#1f77b4", curve([0.2, None, 0.4])),
                                  ("raw", "#ff7f0e", curve([12.0, 9.5, 3.0], 1.0))],
                                 ranges={"a": (0, 1), "raw": None}, thresholds={},
                                 title="t", salt="s")
    assert one and two
    # The second panel has its own axes: two axes groups instead of one.
    assert one.count('id="s-axes_') == 1 and two.count('id="s-axes_') == 2


def test_formatters() -> None:
    assert fmt_slope(None) == "—" and fmt_slope({"value": None, "n": 3}) == "—"
    assert fmt_slope({"value": 0.004, "n": 16, "clusters": 1}) == "0.004 n=16, 1 conversation"
    assert fmt_slope({"value": -0.12, "ci_low": None, "ci_high": -0.01}) == "−0.12 [—, −0.01]"
    assert fmt_first({"turns": [2, 4, None], "median": 3, "n_crossed": 2, "n": 3}) == \
        "turn 3 (median; 2 of 3 conversations)"
    assert fmt_first({"median": 2.5, "n_crossed": 2, "n": 2}) == \
        "turn 2.50 (median; 2 of 2 conversations)"
    assert fmt_first({"median": None, "n_crossed": None}) == "—" and fmt_first(None) == "—"
    assert metric_range({"range": [0, 1]}) == (0.0, 1.0)
    assert metric_range({"range": [5, 1]}) is None
    assert metric_range({"range": ["a", 1]}) is None and metric_range({"range": None}) is None


@pytest.mark.browser
def test_simulate_report_in_headless_chromium(driver: WebDriver,
                                              summary: dict[str, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_report(driver, write_simulate_report(summary, tmp_path / "run"), "simulate")

    svgs = driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(svgs) == 2
    for svg in svgs:
        assert svg.is_displayed()
        assert svg.size["width"] > 300 and svg.size["height"] > 150, svg.size

    # Turns are hidden until their conversation is opened.
    details = driver.find_elements(By.CSS_SELECTOR, "details.conversation")
    assert len(details) == 2
    leak = details[1].find_element(By.CSS_SELECTOR, "li.turn.leak")
    assert not leak.is_displayed()
    details[1].find_element(By.TAG_NAME, "summary").click()
    assert details[1].get_attribute("open") is not None
    assert leak.is_displayed() and "first out-of-persona turn" in leak.text
    shown = details[1].find_elements(By.CSS_SELECTOR, "li.turn")
    assert len(shown) == 8 and all(t.is_displayed() for t in shown)
    assert not any(t.is_displayed() for t in details[0].find_elements(By.CSS_SELECTOR, "li.turn"))
    assert not [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
