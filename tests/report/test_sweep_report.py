"""The steer sweep report (report.html, sweep.md, sweep.svg) and the base template every
report page extends."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from personae.report import html as report_html
from personae.report import simulate as report_simulate
from personae.report import survey as report_survey
from personae.report import sweep as report_sweep
from personae.report.html import render_html
from personae.report.simulate import render_simulate_html
from personae.report.survey import render_survey_html
from personae.report.sweep import (
    format_table,
    instrument_legend,
    measure_label,
    plot_svg,
    render_sweep_html,
    sweep_artifacts,
    verdict,
    write_sweep_report,
)
from personae.runtime.store import RunStore
from personae.steer.sweep import InstrumentScale, SweepConfig, summarise
from tests.report.test_html import parse, section

HOSTILE = "<script>alert(1)</script>"
TEMPLATES = Path(report_html.__file__).parent / "templates"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "report"
COEFS = [-1.0, -0.5, 0.0, 0.5, 1.0]


def sweep_summary(tmp_path: Path, *, vector: str = "vectors/introverted.safetensors",
                  trait: str = "introverted", scale_name: str = "Extraversion",
                  header: bool = True) -> dict[str, Any]:
    """A sweep's summary from records stored as the sweep stores them (``measure`` per
    response, ``item`` per questionnaire item), with the run header on top: text and
    projection rise with the coefficient, the reversed instrument falls, perplexity breaks
    away from 0."""
    store = RunStore(tmp_path / "run")
    try:
        for c in COEFS:
            for i in range(4):
                store.put("measure", f"{c:g}|{i}", {
                    "coefficient": c, "text_score": c + 0.01 * i, "projection": 10 * c + i,
                    "tokens": 5, "nll": 1.0 + abs(c) * 3 + 0.01 * i})
            for item in range(3):
                store.put("item", f"{c:g}|{item}", {
                    "coefficient": c, "item": f"e{item}", "keyed": 3.0 - c + 0.1 * item,
                    "argmax": 3, "coverage": 0.9})
        cfg = SweepConfig(vector=vector, layer=3, coefficients=COEFS, trait=trait, scale="E")
        scale = InstrumentScale(instrument="ipip-120", questionnaire="IPIP-NEO-120",
                                trait=trait, scale="E", scale_name=scale_name, sign=-1,
                                items=3)
        body = summarise(cfg, store, {"text": 1, "projection": 1, "instrument": -1}, scale)
        counts = store.counts()
    finally:
        store.close()
    if not header:
        return body
    return {"kind": "sweep", "schema_version": 1, "run_dir": str(tmp_path / "run"),
            "created": "2025-03-01T12:00:00+00:00", "duration_s": 95.2, "counts": counts,
            "warnings": ["2 responses were empty"], "personae_version": "9.9.9", **body}


@pytest.fixture
def summary(tmp_path: Path) -> dict[str, Any]:
    return sweep_summary(tmp_path)


@pytest.fixture
def page(summary: dict[str, Any]) -> str:
    return render_sweep_html(summary)


# --------------------------------------------------------------------------- sweep report


def test_markdown_table_verdicts_and_legend(summary: dict[str, Any]) -> None:
    table = format_table(summary)
    lines = table.splitlines()
    assert lines[0] == ("| coefficient (× residual norm) | instrument (E Extraversion, reversed) "
                        "| text score | projection | perplexity | coherent |")
    assert len([ln for ln in lines if ln.startswith("| ")]) == 1 + len(COEFS)
    assert "| 0 | 3.10 [3.00, 3.20] n=3 | 0.015 [0.005, 0.025] n=4 |" in table
    assert "- text score: MOVES (means up, as expected" in table
    assert "- instrument (E Extraversion, reversed): MOVES (means down, as expected" in table
    assert "- perplexity: coherence breaks at -1, -0.5, 0.5, 1 (over 2× unsteered)" in table
    assert table.endswith(instrument_legend(summary) + "\n")
    assert instrument_legend(summary).startswith("instrument: IPIP-NEO-120 domain E "
                                                 "(Extraversion), mean keyed item score over 3")
    assert measure_label(summary, "text") == "text score"
    assert verdict({**summary, "trends": {}}, "text") == "not measured"


def test_page_has_facts_table_verdicts_and_the_plot(page: str, summary: dict[str, Any]) -> None:
    doc = parse(page)
    assert {"run-facts", "warnings", "verdicts", "verdict-list", "instrument-legend",
            "coefficients", "sweep-table", "plot"} <= doc.ids
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>personae steer sweep report · " in page
    facts = section(page.replace("<header>", '<section id="header">')
                    .replace("</header>", "</section>"), "header")
    for label, value in (("Layer", "3"), ("Trait", "introverted"), ("Model", "hf:bundled"),
                         ("Coefficients", "-1, -0.5, 0, 0.5, 1"), ("Item records", "15"),
                         ("Measure records", "20"), ("Duration", "1 min 35 s"),
                         ("Scale", "E Extraversion, reversed"),
                         ("Unsteered perplexity", "2.8"), ("Coherence limit", "2× unsteered")):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in facts, label
    assert '<div class="bad"><dt>Coherent everywhere</dt><dd>no</dd></div>' in facts
    assert "2 responses were empty" in section(page, "warnings")
    assert "Generated by personae 9.9.9." in page

    # One row per coefficient, the unsteered one marked; values with their CIs and n.
    rows = re.findall(r"<tr( class=\"baseline\")?><td class=\"num\">([^<]*)</td>",
                      section(page, "coefficients"))
    assert [c for _, c in rows] == ["-1", "-0.5", "0", "0.5", "1"]
    assert [bool(b) for b, _ in rows] == [False, False, True, False, False]
    assert "3.10 [3.00, 3.20]<span class=\"sub\">n=3</span>" in page
    assert "0.015 [0.005, 0.025]<span class=\"sub\">n=4</span>" in page
    assert page.count('<td class="pass-no">✗ no</td>') == 4
    assert page.count('<td class="pass-yes">✓ yes</td>') == 1

    # One verdict line per measure, the same words as sweep.md, coloured by what they say.
    verdicts = section(page, "verdicts")
    for name in ("instrument", "text", "projection", "perplexity"):
        assert f'data-measure="{name}"' in verdicts
        assert verdict(summary, name) in verdicts
    assert verdicts.count("pass-yes") == 3 and verdicts.count("pass-no") == 1
    assert instrument_legend(summary) in verdicts

    # The plot is inline, exactly the one written to sweep.svg.
    plot = section(page, "plot")
    assert plot.count('<svg class="plot"') == 1 and plot_svg(summary) in plot
    assert 'aria-label="Steering sweep: introverted.safetensors at layer 3"' in plot


def test_opposite_and_flat_measures_are_marked(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    s["trends"]["text"]["expected"] = -1
    s["trends"]["projection"]["moves"] = False
    for r in s["rows"]:
        r["coherent"] = True
    verdicts = section(render_sweep_html(s), "verdicts")
    assert re.search(r'data-measure="text">.*pass-no">MOVES \(means up, OPPOSITE', verdicts)
    assert re.search(r'data-measure="projection">.*pass-na">does not move', verdicts)
    assert re.search(r'data-measure="perplexity">.*pass-yes">coherence holds everywhere',
                     verdicts)


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    s = sweep_summary(tmp_path, vector=f"runs/{HOSTILE}/x{HOSTILE}.safetensors",
                      trait=f"intro{HOSTILE}", scale_name=f"<b>Extra</b>{HOSTILE}")
    s["warnings"] = [HOSTILE]
    s["run_dir"] = f"/tmp/{HOSTILE}"
    s["counts"] = {HOSTILE: 1}
    page = render_sweep_html(s)
    assert "<script>alert" not in page and "<b>Extra" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;Extra&lt;/b&gt;" in page
    # The only script-like text left is inside escaped attributes and text, never a tag.
    doc = parse(page)
    assert [t for t, _ in doc.tags if t in ("script", "b")] == []


def test_summary_without_header(tmp_path: Path) -> None:
    s = sweep_summary(tmp_path, header=False)
    page = render_sweep_html(s)
    assert "<dt>Run directory</dt>" not in page and "<dt>Duration</dt>" not in page
    assert "<dt>Layer</dt><dd>3</dd>" in page
    assert 'id="warnings"' not in page
    # No run directory in the summary: the page is named after the vector.
    assert '<p class="subtitle mono">vectors/introverted.safetensors</p>' in page
    assert "Generated by personae —." in page


def test_missing_and_null_fields_render() -> None:
    for s in ({}, {"config": None, "rows": None, "trends": None},
              {"config": {"vector": "v.safetensors", "coefficients": [0, 1]},
               "rows": [{"coefficient": 0, "text": None, "coherent": None}]}):
        page = render_sweep_html(s)
        assert page.startswith("<!DOCTYPE html>") and "NaN" not in page
        assert section(page, "verdicts").count("not measured") == 4
        assert "No values to plot." in section(page, "plot")
    assert "No coefficients in this summary." in render_sweep_html({})
    with pytest.raises(TypeError, match="mapping"):
        render_sweep_html([])  # type: ignore[arg-type]


def test_write_sweep_report(summary: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = write_sweep_report(summary, out)
    assert files == {"html": out / "report.html", "table": out / "sweep.md",
                     "plot": out / "sweep.svg"}
    assert files["html"].read_text(encoding="utf-8") == render_sweep_html(summary)
    assert files["table"].read_text(encoding="utf-8") == format_table(summary)
    assert files["plot"].read_text(encoding="utf-8") == plot_svg(summary) + "\n"
    assert files["html"].stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "sweep.md", "sweep.svg"]
    # Nothing to plot: no sweep.svg.
    empty = copy.deepcopy(summary)
    for r in empty["rows"]:
        for m in ("instrument", "text", "projection", "perplexity"):
            r[m] = {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    assert set(sweep_artifacts(empty)) == {"report.html", "sweep.md"}


def test_deterministic_output(summary: dict[str, Any]) -> None:
    assert render_sweep_html(summary) == render_sweep_html(json.loads(json.dumps(summary)))


# --------------------------------------------------------------------------- base template


def test_every_report_extends_the_one_base_template() -> None:
    pages = sorted(p.name for p in TEMPLATES.glob("*.html.j2")
                   if p.name not in {"base.html.j2", "macros.html.j2"})
    assert pages == ["report.html.j2", "simulate.html.j2", "survey.html.j2", "sweep.html.j2"]
    for name in pages:
        assert (TEMPLATES / name).read_text(encoding="utf-8").startswith(
            '{% extends "base.html.j2" %}\n'), name
    # The page shell and the shared CSS live in the base alone.
    tree = {p.name: p.read_text(encoding="utf-8") for p in TEMPLATES.rglob("*.j2")}
    for rule in ("dl.facts dd {", "<!DOCTYPE html>", 'id="run-facts"', 'id="warnings"',
                 "<footer>", "@media print", "figure.plot-box {", "svg.plot {"):
        assert [n for n, t in tree.items() if rule in t] == ["base.html.j2"], rule
    assert [n for n, t in tree.items() if "{% macro plot(" in t] == ["macros.html.j2"]


def test_one_environment_for_all_reports() -> None:
    env = report_html.template_env()
    assert env is report_html.template_env() and env.autoescape is True
    for module in (report_survey, report_simulate, report_sweep):
        assert module.template_env is report_html.template_env


def test_every_report_renders_the_shared_shell(summary: dict[str, Any]) -> None:
    eval_summary = json.loads((FIXTURES / "summary.json").read_text(encoding="utf-8"))
    sim_summary = json.loads((FIXTURES / "simulate_summary.json").read_text(encoding="utf-8"))
    survey_summary = {"run": {"run_dir": "runs/survey", "personae_version": "1.2.3",
                              "source": "IPIP", "licence": "public domain"},
                      "warnings": ["tiny model"]}
    pages = {"eval": render_html(eval_summary), "simulate": render_simulate_html(sim_summary),
             "survey": render_survey_html(survey_summary),
             "steer sweep": render_sweep_html(summary)}
    for kind, page in pages.items():
        assert page.startswith("<!DOCTYPE html>\n"), kind
        assert f"<h1>personae {kind} report</h1>" in page, kind
        assert page.count("dl.facts dd {") == 1, kind
        assert page.count('id="run-facts"') == 1 and page.count("<footer>") == 1, kind
        assert page.count('id="warnings"') == 1, kind
        assert "Self-contained: this file loads nothing from the network." in page, kind
        head = page[: page.index("</head>")]
        assert head.count("<style>") == 1 and head.count("<link") == 1, kind
    # Each page keeps its own rules and its own footer text.
    assert "#records col.c-persona" in pages["eval"]
    assert "ol.chat li.turn" in pages["simulate"] and "--warn: #b26a00" in pages["simulate"]
    assert "Items: IPIP. Licence: public domain.<br>" in pages["survey"]
    assert "tr.baseline td" in pages["steer sweep"]
