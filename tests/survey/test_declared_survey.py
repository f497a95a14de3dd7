"""A survey of personas with declared traits, end to end: a scripted model that answers as
each persona's traits say must come out with r = 1 and zero differences in summary.json, the
report and the terminal tables."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from personae.cli import main
from personae.instruments import Item, load_questionnaire
from personae.models import ChatParams, ChoiceScores, Completion, Message
from personae.models.base import BaseBackend
from personae.models.registry import BACKENDS
from personae.persona import Persona, resolve_personas
from personae.report import render_report
from personae.report.survey import render_survey_html
from personae.report.survey_console import print_survey_summary
from personae.survey.run import SurveyConfig, run_survey
from personae.survey.summary import (
    PersonaLevels,
    declared_levels,
    declared_vs_measured,
)

Q = load_questionnaire("ipip-120")
_ITEM = re.compile(r'statement, "([^"]+)"')
_TEXT = {i.text: i for i in Q.items}
N_PERSONAS = 5
N_ITEMS = 10  # two items per domain, forward- and reverse-keyed among them


def _item(messages: Sequence[Message]) -> Item:
    found = _ITEM.search(messages[-1].content)
    assert found is not None
    return _TEXT[found.group(1)]


class TraitFollower(BaseBackend):
    """Answers every item at the asking persona's declared level of the item's domain
    (6 − level for reverse-keyed items, so the keyed score is the level). A half-point
    level is half the probability on each digit either side: its expected value."""

    backend = "scripted"
    capabilities = BACKENDS["scripted"].capabilities
    max_concurrency = 4

    def __init__(self, personas: Sequence[Persona]) -> None:
        # The card template opens with "You are <name>.": that tells who is asking.
        self.levels = {f"You are {p.name}.": declared_levels(p.traits.as_dict())
                       for p in personas if p.traits}
        self.identity = "scripted:trait-follower"
        self.calls = 0

    def _value(self, messages: Sequence[Message]) -> float:
        system = messages[0].content if messages[0].role == "system" else ""
        levels = next(v for k, v in self.levels.items() if system.startswith(k))
        item = _item(messages)
        level = levels[item.scale]
        return 6 - level if item.reversed else level

    async def score_choices(self, messages: Sequence[Message], choices: Sequence[str], *,
                            prefill: str = "") -> ChoiceScores:
        self.calls += 1
        x = self._value(messages)
        lo, hi = math.floor(x), math.ceil(x)
        weight = {str(lo): hi - x, str(hi): x - lo} if lo != hi else {str(lo): 1.0}
        return ChoiceScores.from_logprobs(
            choices, [math.log(weight[c]) if weight.get(c) else -math.inf for c in choices])

    async def chat(self, messages: Sequence[Message], params: ChatParams) -> Completion:
        self.calls += 1
        return Completion(text=str(round(self._value(messages))))


@pytest.fixture
def personas() -> list[Persona]:
    chosen = resolve_personas("sample")[:N_PERSONAS]
    for d in "NEOAC":  # r = 1 needs declared levels that vary in every domain
        assert len({declared_levels(p.traits.as_dict())[d] for p in chosen if p.traits}) > 1
    return chosen


def _check_summary(summary: dict, personas: list[Persona]) -> None:
    section = summary["declared_vs_measured"]
    assert section["variant"] == "base" and section["without_traits"] == []
    assert [p["persona_id"] for p in section["personas"]] == [p.id for p in personas]
    for row, persona in zip(section["personas"], personas, strict=True):
        assert persona.traits is not None
        declared = declared_levels(persona.traits.as_dict())
        for d in "NEOAC":
            cell = row["domains"][d]
            assert cell["declared"] == declared[d]
            assert cell["measured"]["value"] == pytest.approx(declared[d])
            assert cell["measured"]["n"] == 2
            assert cell["difference"] == pytest.approx(0.0, abs=1e-9)
    for r in [*section["by_domain"], section["pooled"]]:
        assert r["correlation"]["r"] == pytest.approx(1.0), r
        assert r["mean_abs_difference"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert [r["n"] for r in section["by_domain"]] == [N_PERSONAS] * 5
    assert section["pooled"]["n"] == 5 * N_PERSONAS


def test_a_model_that_follows_the_declared_traits_agrees_perfectly(
        tmp_path: Path, personas: list[Persona]) -> None:
    model = TraitFollower(personas)
    cfg = SurveyConfig(model="scripted:trait-follower", progress="off", personas="sample",
                       limit=N_PERSONAS, items=N_ITEMS, variants=["base", "reversed"])
    result = run_survey(cfg, tmp_path, model=model, use_cache=False)
    assert not result.failures
    summary = json.loads((tmp_path / "summary.json").read_text())
    _check_summary(summary, personas)  # measured from the base variant, not reversed
    html = render_report(summary, tmp_path).read_text()
    assert 'id="declared-table"' in html and 'id="declared-agreement-table"' in html
    assert "Declared vs measured traits" in html and "all (pooled)" in html
    assert personas[0].name and personas[0].name in html
    console = Console(width=200, record=True)
    print_survey_summary(summary, console=console)
    text = console.export_text()
    assert "Declared vs measured traits" in text and "all (pooled)" in text
    assert personas[0].traits is not None
    c = personas[0].traits.conscientiousness
    assert f"{c:g} → {c:.2f} (+0.00)" in text


def test_the_survey_command_prints_and_writes_the_comparison(
        tmp_path: Path, personas: list[Persona], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = TraitFollower(personas)
    # The command loads its model by spec; this one is built from the personas instead.
    monkeypatch.setattr("personae.survey.run.load_model", lambda spec: model)
    monkeypatch.setenv("COLUMNS", "200")
    run = tmp_path / "run"
    code = main(["survey", "--model", "scripted:trait-follower", "--personas", "sample",
                 "--limit", str(N_PERSONAS), "--items", str(N_ITEMS), "--out", str(run)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(run / "report.html")
    assert "Declared vs measured traits" in err and "Pearson's r" in err
    assert "all (pooled)" in err and "(+0.00)" in err
    _check_summary(json.loads((run / "summary.json").read_text()), personas)
    assert 'id="declared-table"' in (run / "report.html").read_text()


def test_personas_without_traits_get_no_comparison(tmp_path: Path) -> None:
    bare = tmp_path / "p.yaml"
    bare.write_text("- {id: ann, name: Ann, summary: A baker.}\n")
    model = TraitFollower([])
    model.levels = {"You are Ann.": {d: 3.0 for d in "NEOAC"}}
    cfg = SurveyConfig(model="scripted:trait-follower", progress="off", personas=str(bare),
                       items=5)
    summary = run_survey(cfg, tmp_path / "run", model=model, use_cache=False).summary
    assert summary["declared_vs_measured"] is None
    html = render_report(summary, tmp_path / "run").read_text()
    assert "No persona in this run declares Big Five traits" in html
    console = Console(width=200, record=True)
    print_survey_summary(summary, console=console)
    assert "Declared vs measured" not in console.export_text()


def test_the_report_escapes_what_personas_bring() -> None:
    mv = {"value": 3.0, "ci_low": 2.5, "ci_high": 3.5, "n": 2}
    section = declared_vs_measured(
        [PersonaLevels("x", "<script>alert(1)</script>", {"E": 3.0}, {"E": mv}),
         PersonaLevels("<b>bold</b>", "B", {}, {"E": mv})], [("E", "Extraversion")])
    html = render_survey_html({"domains": [{"id": "E", "name": "Extra<version>"}],
                               "declared_vs_measured": section, "run": {}})
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "Extra<version>" not in html
