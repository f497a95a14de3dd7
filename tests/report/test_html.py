"""The eval report as HTML: sections, escaping, nulls, plots, determinism, no network."""

from __future__ import annotations

import copy
import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from personae.report import render_html, write_report

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report" / "summary.json"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def summary() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture
def page(summary: dict[str, Any]) -> str:
    return render_html(summary)


class _Collector(HTMLParser):
    """Collects tags, ids, attributes and text, so tests look at structure, not substrings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if d.get("id"):
            self.ids.add(d["id"] or "")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.script_bodies if self._in_script else self.text).append(data)


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


def section(html: str, section_id: str) -> str:
    m = re.search(rf'<section[^>]*id="{section_id}"[^>]*>(.*?)</section>', html, re.DOTALL)
    assert m, f"section #{section_id} missing"
    return m.group(1)


def test_sections_present_in_order(page: str) -> None:
    ids = ["run-facts", "warnings", "verdict", "fidelity", "per-persona", "deltas",
           "consistency", "atomic", "reliability", "drilldown"]
    positions = [page.find(f'id="{i}"') for i in ids]
    assert all(p >= 0 for p in positions), dict(zip(ids, positions, strict=True))
    assert positions == sorted(positions), "sections out of order"
    assert page.startswith("<!DOCTYPE html>")
    for table in ["fidelity-table", "per-persona-table", "deltas-table", "consistency-table",
                  "nli-labels", "consistency-personas", "atomic-table", "atomic-overall",
                  "atomic-codes", "reliability-table", "records"]:
        assert f'id="{table}"' in page, table


def test_run_facts_and_warnings(page: str, summary: dict[str, Any]) -> None:
    facts = section(page, "warnings")
    for w in summary["warnings"]:
        assert str(escape(w)) in facts
    assert "22 min 23 s" in page  # duration_s 1342.7
    assert "benchmark-v1" in page and "runs/2025-06-14T10-32-05-eval" in page
    text = " ".join(parse(page).text)
    assert "Personas" in text and "Probes" in text and "Failed calls" in text


def test_unreliable_judge_banner_and_tags(page: str, summary: dict[str, Any]) -> None:
    verdict = section(page, "verdict")
    assert "Judged scores are UNRELIABLE:" in verdict
    assert summary["reliability"]["verdict"] in verdict
    assert 'class="box banner-bad"' in page
    # Every judged-score section carries the tag.
    for sid in ["fidelity", "deltas", "consistency", "atomic"]:
        assert "unreliable judge" in section(page, sid), sid
    # The banner sits above the first results section.
    assert page.index('id="verdict"') < page.index('id="fidelity"')


def test_reliable_judge_has_no_unreliable_tags(summary: dict[str, Any]) -> None:
    summary["reliability"]["reliable"] = True
    summary["fidelity"]["reliable"] = True
    summary["reliability"]["verdict"] = "all checks passed"
    page = render_html(summary)
    assert "UNRELIABLE" not in page
    assert "unreliable judge" not in page
    assert "Judge reliability checks passed." in page


def test_numbers_and_cis_formatted(page: str) -> None:
    table = section(page, "fidelity")
    assert "3.90 [3.70, 4.10]" in table  # persona, Expected Action
    assert "n=12" in table and "unparsable 1" in table
    rel = section(page, "reliability")
    assert "0.41 [0.28, 0.54]" in rel
    assert "chance 0.33" in rel
    assert "✓ pass" in rel and "✗ fail" in rel
    assert re.search(r'class="pass-na">—<', rel)  # inter-judge alpha not computable
    assert "nan" not in page.lower().replace("nance", "").replace("nant", "")  # no NaN text


def test_hostile_text_is_escaped(summary: dict[str, Any]) -> None:
    s = copy.deepcopy(summary)
    rec = s["records"][0]
    rec["response"] = f"Sure! {HOSTILE} <img src=x onerror=alert(2)>"
    rec["question"] = f'"><{HOSTILE}'
    rec["judgements"][0]["raw"] = f"</pre>{HOSTILE}"
    rec["persona_name"] = f"Eve {HOSTILE}"
    s["warnings"].append(f"warning {HOSTILE}")
    s["reliability"]["verdict"] = f"verdict {HOSTILE}"
    s["fidelity"]["per_persona"][0]["name"] = f"Eve $x$ {HOSTILE} -->"
    s["consistency"]["per_persona"][0]["contradicted"] = [HOSTILE]
    s["fidelity"]["tasks"].append(HOSTILE)
    page = render_html(s)
    assert HOSTILE not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    # Exactly one script element: ours.
    assert page.count("<script") == 1
    # The escaped text reads back as the original.
    assert HOSTILE in " ".join(parse(page).text)


def test_plot_labels_never_parsed_as_math(summary: dict[str, Any]) -> None:
    summary["fidelity"]["per_persona"][0]["name"] = "Costs $5 and $10 \\frac"
    summary["fidelity"]["tasks"][0] = "Odd $ task"
    render_html(summary)  # matplotlib would raise on unbalanced mathtext


def test_svg_plots_embedded(page: str) -> None:
    # task scores, heat map, forest plot, consistency
    assert page.count("<svg") == 4
    assert page.count('class="plot"') == 4
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    for sid, n in [("fidelity", 2), ("deltas", 1), ("consistency", 1)]:
        assert section(page, sid).count("<svg") == n, sid
    # Element ids are unique across plots (per-plot hash salt).
    ids = re.findall(r'\sid="([^"]+)"', page)
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, sorted(dupes)[:5]


def test_only_run_and_no_records(summary: dict[str, Any]) -> None:
    page = render_html({"schema_version": 1, "run": summary["run"], "records": []})
    for what in ["Fidelity", "Baseline deltas", "Consistency", "Atomic trait fidelity",
                 "Judge reliability"]:
        assert f"{what}: not run" in page, what
    assert "<svg" not in page
    assert "No records." in page
    assert "Judge reliability was not checked." in page
    assert "UNRELIABLE" not in page


def test_empty_and_null_everywhere() -> None:
    # Nothing but nulls: still renders, dashes for missing values, never "None"/"nan".
    page = render_html({"run": {}, "warnings": None, "fidelity": None, "consistency": None,
                        "atomic": None, "reliability": None, "records": None})
    assert "not run" in page
    assert ">None<" not in page and "nan" not in page.lower().split("<style>")[0]
    null_mv = {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    tasks = ["Expected Action"]
    block = {"tasks": {"Expected Action": null_mv}, "persona_score": null_mv,
             "unparsable": {"Expected Action": None}}
    page = render_html({
        "run": {"conditions": ["persona"], "duration_s": None, "counts": None},
        "fidelity": {"tasks": tasks, "by_condition": {"persona": block},
                     "deltas": {"no_persona": {"tasks": {"Expected Action": None},
                                               "persona_score": None}},
                     "per_persona": [{"persona_id": "x", "name": None,
                                      "tasks": {"Expected Action": None},
                                      "persona_score": math.nan}],
                     "reliable": None},
        "consistency": {"by_condition": {"persona": None}, "labels": {}, "per_persona": []},
        "atomic": {"per_persona": [{"persona_id": "x", "name": "X", "trait": None,
                                    "target": None, "mean": None, "acc_atom": math.inf,
                                    "ic_atom": None, "rc_atom": None, "n_atoms": 0}],
                   "overall": {}, "codes": {}},
        "reliability": {"threshold": None, "reliable": None, "verdict": None,
                        "checks": [{"name": "order_sensitivity", "value": None,
                                    "passed": None, "note": None}]},
        "records": [{"persona_id": "x", "condition": "persona", "response": None,
                     "error": None, "judgements": [{"judge": "j", "score": None, "raw": None}],
                     "nli": [{"fact": "f", "label": None}]}],
    })
    assert "<svg" not in page  # nothing finite to plot
    assert "No values to plot." in page
    body = page.split("</style>", 1)[1]
    assert "None" not in body and "nan" not in body.lower().replace("nance", "")
    assert "inf" not in re.sub(r"[a-z]inf|inf[a-z]", "", body.lower())
    assert "—" in body


def test_deterministic(summary: dict[str, Any]) -> None:
    assert render_html(summary) == render_html(copy.deepcopy(summary))


def test_no_external_resources(page: str) -> None:
    assert not re.search(r"""(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:)?//""", page,
                         re.IGNORECASE)
    assert "@import" not in page
    assert not re.search(r"""url\(\s*['"]?(?!#)""", page)  # only in-page references
    for tag, attrs in parse(page).tags:
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
    # Nothing that would fetch: no external scripts, stylesheets, images or fonts.
    assert "<link rel=\"stylesheet\"" not in page and "<img" not in page
    assert "<iframe" not in page


def test_write_report_atomic(tmp_path: Path, summary: dict[str, Any]) -> None:
    out = tmp_path / "run" / "nested"
    path = write_report(summary, out)
    assert path == out / "report.html"
    assert path.read_text(encoding="utf-8") == render_html(summary)
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no temp files left
    assert os.stat(path).st_mode & 0o777 == 0o644
    # Overwrites in place.
    summary["warnings"] = ["second run"]
    write_report(summary, out)
    assert "second run" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_write_report_failure_leaves_old_report(tmp_path: Path,
                                                summary: dict[str, Any]) -> None:
    out = tmp_path / "run"
    path = write_report(summary, out)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_report(["not", "a", "mapping"], out)  # type: ignore[arg-type]
    assert path.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_drilldown_lists_every_record(page: str, summary: dict[str, Any]) -> None:
    drill = section(page, "drilldown")
    assert drill.count('<tr class="record"') == len(summary["records"])
    assert 'id="record-filter"' in drill
    assert "timeout after 60.0 s" in drill  # the failed call shows its error
    assert "<details>" in drill and "Score: 5" in drill
    assert "contradiction" in drill
    assert '<span class="err">unparsable</span>' in drill  # judge answered, no score parsed


def test_import_does_not_load_matplotlib() -> None:
    import subprocess
    import sys

    code = ("import sys, personae; assert 'matplotlib' not in sys.modules; "
            "assert 'personae.report' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
