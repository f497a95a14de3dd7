"""Survey runs in process: store, resume, summary numbers, shaping, report."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from personae.errors import InputError
from personae.instruments import Item, cronbach_alpha, load_questionnaire, mcdonald_omega
from personae.instruments.shaping import MARKERS
from personae.models import Message
from personae.models.scripted import ScriptedModel
from personae.models.spec import is_bundled
from personae.report import render_report
from personae.runtime.store import RunStore
from personae.survey.run import SurveyConfig, run_survey
from tests.instruments.fakes import FakeModel

Q = load_questionnaire("ipip-120")
_ITEM = re.compile(r'statement, "([^"]+)"')
_TEXT = {i.text: i for i in Q.items}


def _item(messages: Sequence[Message]) -> Item:
    found = _ITEM.search(messages[-1].content)
    assert found is not None
    return _TEXT[found.group(1)]


def _hashed(messages: Sequence[Message]) -> str:
    """A respondent whose answer depends on who it is (system prompt) and the item."""
    system = messages[0].content if messages[0].role == "system" else ""
    digest = hashlib.sha256((system + messages[-1].content).encode()).digest()
    return str(1 + digest[0] % 5)


_QUALIFIED = [("extremely", 0), ("very", 1), ("", 2), ("a bit", 3)]


def _obedient(messages: Sequence[Message]) -> str:
    """Answers as the shaping prompt says: level 1-9 → 1-5 on its domain, keyed."""
    system = messages[0].content if messages[0].role == "system" else ""
    item = _item(messages)
    low, high = MARKERS[item.scale][0]
    level = 5
    for word, k in _QUALIFIED:
        lead = f"I'm {word} " if word else "I'm "
        if f"{lead}{low}," in system:
            level = 1 + k
        if f"{lead}{high}," in system:
            level = 9 - k
    value = 1 + (level - 1) / 2
    return str(6 - value if item.reversed else value)


def _cfg(**kw: object) -> SurveyConfig:
    return SurveyConfig(**{"model": "scripted:test", "progress": "off", **kw})


def test_run_writes_summary_and_report_and_a_rerun_is_free(tmp_path: Path) -> None:
    model = ScriptedModel(choices={"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2})
    cfg = _cfg(items=10)
    first = run_survey(cfg, tmp_path / "run", model=model, use_cache=False)
    assert first.model_calls == model.calls == 10 and not first.failures
    s = first.summary
    assert s["kind"] == "survey" and s["run"]["counts"] == {
        "answers": 10, "expected": 10, "unparsable": 0, "failed_calls": 0}
    (admin,) = s["scores"]
    assert admin["respondent"] == "model" and admin["variant"] == "base"
    # Items 2 and 7 are E, forward-keyed: expected value 3.5 each.
    assert admin["domains"]["E"] == {"value": 3.5, "ci_low": 3.5, "ci_high": 3.5, "n": 2}
    assert admin["domains"]["A"]["value"] == pytest.approx(3.0)  # 4 forward, 9 reversed
    assert admin["coverage"]["value"] == pytest.approx(1.0)
    assert admin["acquiescence"] is None  # no facet has both keyings among 10 items
    assert s["reliability"]["domains"]["E"]["alpha"] is None  # one row: not computable
    html = render_report(s, tmp_path / "run").read_text()
    assert "Domain scores" in html and "<svg" in html and "NaN" not in html
    again = run_survey(cfg, tmp_path / "run", model=model, use_cache=False)
    assert again.model_calls == 0 and model.calls == 10
    assert again.summary == json.loads((tmp_path / "run" / "summary.json").read_text())


def test_a_yea_sayer_is_called_out(tmp_path: Path) -> None:
    model = FakeModel(lambda messages: "Very Accurate", confidence=0.9)
    s = run_survey(_cfg(items=60), tmp_path, model=model, use_cache=False).summary
    (admin,) = s["scores"]
    assert admin["acquiescence"] == pytest.approx(1.8)  # 0.92·5 + 0.02·(1+2+3+4) - 3
    assert any(w.startswith("Strong acquiescence in 1 of 1 administrations (up to +1.80")
               for w in s["warnings"])


def test_more_items_extend_the_same_run(tmp_path: Path) -> None:
    model = ScriptedModel(choices={"3": 1.0, "4": 1.0})
    run_survey(_cfg(items=5), tmp_path, model=model, use_cache=False)
    more = run_survey(_cfg(items=8), tmp_path, model=model, use_cache=False)
    assert more.model_calls == 3 and more.summary["run"]["counts"]["answers"] == 8


def test_reliability_over_personas_and_variants(tmp_path: Path) -> None:
    model = FakeModel(_hashed)
    cfg = _cfg(personas="sample", limit=4, items=30, variants=["base", "reversed"])
    s = run_survey(cfg, tmp_path, model=model, use_cache=False).summary
    assert len(s["scores"]) == 8
    rel = s["reliability"]["domains"]["N"]
    assert rel["n_rows"] == 8 and rel["n_items"] == 6
    # The same numbers from the stored answers, computed directly.
    store = RunStore(tmp_path)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for _, r in store.items("answer"):
        item = Q.item(r["item_id"])
        if item.scale == "N":
            keyed = 6 - r["value"] if item.reversed else r["value"]
            rows.setdefault((r["respondent"], r["variant"]), {})[item.id] = keyed
    store.close()
    matrix = [[row[i] for i in sorted(row, key=int)] for row in rows.values()]
    assert rel["alpha"] == pytest.approx(cronbach_alpha(matrix))
    assert rel["omega"] == pytest.approx(mcdonald_omega(matrix))
    assert len(s["spread"]) == 4 * 5  # per persona × domain, over 2 variants
    assert {r["n"] for r in s["spread"]} == {2}


def test_shaping_an_obedient_model_gives_rho_one(tmp_path: Path) -> None:
    model = FakeModel(_obedient, confidence=0.9)
    s = run_survey(_cfg(items=30, shape=True), tmp_path, model=model, use_cache=False).summary
    # Unshaped baseline (30 items) + 45 conditions × 6 items of their domain.
    assert s["run"]["counts"]["answers"] == 30 + 45 * 6
    shaping = s["shaping"]
    assert {r["domain"] for r in shaping["rows"]} == set("NEOAC")
    for r in shaping["rows"]:
        assert r["n"] == 9 and r["rho"] == pytest.approx(1.0), r
    e = sorted((p for p in shaping["points"] if p["domain"] == "E"), key=lambda p: p["level"])
    assert [p["level"] for p in e] == list(range(1, 10))
    assert e[0]["value"] < e[4]["value"] < e[8]["value"]
    assert [a["shape"] for a in s["scores"]].count(None) == 1
    html = render_report(s, tmp_path).read_text()
    assert "Trait shaping" in html and html.count("<svg") >= 2


def test_interrupted_run_resumes_with_no_duplicates(tmp_path: Path) -> None:
    cfg = _cfg(personas="sample", limit=2, items=20, variants=["base", "shuffled"])
    broken = run_survey(cfg, tmp_path, model=FakeModel(_hashed, fail_after=25),
                        use_cache=False)
    assert broken.failures
    assert any("re-run" in w for w in broken.summary["warnings"])
    stored_before = broken.summary["run"]["counts"]["answers"]
    assert stored_before == 25
    fixed = FakeModel(_hashed)
    done = run_survey(cfg, tmp_path, model=fixed, use_cache=False)
    expected = 2 * 20 * 3
    assert not done.failures and len(fixed.requests) == expected - 25
    store = RunStore(tmp_path)
    keys = [k for k, _ in store.items("answer")]
    store.close()
    assert len(keys) == len(set(keys)) == expected
    clean = run_survey(cfg, tmp_path / "clean", model=FakeModel(_hashed), use_cache=False)
    assert [a["domains"] for a in done.summary["scores"]] == \
        [a["domains"] for a in clean.summary["scores"]]


def test_other_settings_in_the_same_directory_are_refused(tmp_path: Path) -> None:
    model = ScriptedModel(choices={"4": 1.0}, replies=["4"])
    run_survey(_cfg(items=3), tmp_path, model=model, use_cache=False)
    with pytest.raises(InputError, match="mode differ"):
        run_survey(_cfg(items=3, mode="generate"), tmp_path, model=model, use_cache=False)


def test_shaping_needs_the_big_five(tmp_path: Path) -> None:
    data = {"name": "mini", "response_scale": [{"value": 1, "label": "no"},
                                               {"value": 5, "label": "yes"}],
            "scales": [{"id": "X", "name": "Other"}],
            "items": [{"id": "1", "text": "Hi.", "scale": "X"}]}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="trait shaping needs the Big Five"):
        run_survey(_cfg(instrument=str(path), shape=True), tmp_path / "run",
                   model=ScriptedModel(), use_cache=False)
    assert not (tmp_path / "run").exists()  # nothing made before the input was checked


def test_bundled_model_is_recognised() -> None:
    assert is_bundled("bundled") and is_bundled("hf:bundled") and is_bundled("bundled?n_ctx=4096")
    assert not is_bundled("scripted:x.yaml") and not is_bundled("nonsense:")
