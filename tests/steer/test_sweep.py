"""The coefficient sweep: pure measures, the summary from stored records, and a real run."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from personae.errors import InputError
from personae.report import render_report, rewrite_report
from personae.report.sweep import format_table
from personae.runtime.store import RunStore
from personae.steer.sweep import (
    SweepConfig,
    held_out_questions,
    perplexity_ci,
    response_nll,
    run_sweep,
    summarise,
    symmetric_coefficients,
    trend,
)
from personae.vectors.file import PersonaVector
from tests.conftest import assert_one_line_error, run_cli


def test_symmetric_coefficients_include_zero_when_odd_and_reject_nonsense() -> None:
    assert symmetric_coefficients(2, 5) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert 0.0 not in symmetric_coefficients(1, 4)
    with pytest.raises(InputError, match="k > 0"):
        symmetric_coefficients(0, 5)


def test_response_nll_matches_torch_cross_entropy() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 11)).astype(np.float32)
    ids = rng.integers(0, 11, size=7).tolist()
    ours = response_nll(logits, ids, 3)
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits[2:6]), torch.tensor(ids[3:]),
                                            reduction="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    with pytest.raises(ValueError):
        response_nll(logits, ids, 0)


def test_perplexity_is_exp_of_mean_nll_with_mapped_interval() -> None:
    m = perplexity_ci([1.0, 1.2, 0.8, 1.0])
    assert m.value == pytest.approx(math.e)
    assert m.ci_low <= m.value <= m.ci_high and m.n == 4


def test_trend_needs_monotone_means_and_an_interval_excluding_zero() -> None:
    up = trend([0, 0, 0, 1, 1, 1, 2, 2, 2], [1, 2, 1.5, 3, 4, 3.5, 5, 6, 5.5], [1.5, 3.5, 5.5])
    assert up["moves"] and up["direction"] == 1
    down = trend([0, 0, 0, 1, 1, 1, 2, 2, 2], [6, 5, 5.5, 4, 3, 3.5, 1, 2, 1.5],
                 [5.5, 3.5, 1.5])
    assert down["moves"] and down["direction"] == -1
    bump = trend([0, 0, 1, 1, 2, 2], [1, 1.1, 5, 5.2, 1.2, 1.0], [1.05, 5.1, 1.1])
    assert not bump["monotone"] and not bump["moves"]
    # Monotone means, but too little data for rho's interval to exclude 0: does not move.
    weak = trend([0, 1, 2], [1.0, 1.1, 1.2], [1.0, 1.1, 1.2])
    assert weak["monotone"] and not weak["moves"]


def test_held_out_questions_come_from_the_end() -> None:
    qs = [f"q{i}" for i in range(10)]
    assert held_out_questions(qs, 3) == ["q7", "q8", "q9"]
    with pytest.raises(InputError, match="has 10 questions"):
        held_out_questions(qs, 11)


def _fill(store: RunStore, coefs: list[float]) -> None:
    for c in coefs:
        for i in range(4):
            store.put("measure", f"{c:g}|{i}", {"coefficient": c, "text_score": c + 0.01 * i,
                                                 "projection": 10 * c + i, "tokens": 5,
                                                 "nll": 1.0 + abs(c) * 3 + 0.01 * i})
        for item in range(3):
            store.put("item", f"{c:g}|{item}", {"coefficient": c, "keyed": 3.0 + 0.1 * item,
                                                 "coverage": 0.9})


def test_summary_from_records_moves_text_and_flags_incoherent_coefficients(
        tmp_path: Path) -> None:
    coefs = [-1.0, -0.5, 0.0, 0.5, 1.0]
    cfg = SweepConfig(vector=str(tmp_path / "v.safetensors"), layer=3, coefficients=coefs)
    store = RunStore(tmp_path)
    _fill(store, coefs)
    s = summarise(cfg, store)
    assert [r["coefficient"] for r in s["rows"]] == coefs
    assert s["trends"]["text"]["moves"] and s["trends"]["projection"]["direction"] == 1
    assert not s["trends"]["instrument"]["moves"]  # identical at every coefficient
    # NLL 1 + 3|c|: perplexity e^4 at ±1 is over 2 × e^1, e^2.5 at ±0.5 is over too.
    assert [r["coherent"] for r in s["rows"]] == [False, False, True, False, False]
    table = format_table(s)
    assert "| 0 |" in table and "text score: MOVES" in table and "coherence breaks at -1, -0.5" in table


@pytest.mark.model
def test_sweep_runs_on_the_bundled_model_and_resumes_without_new_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    vec = PersonaVector.from_array(rng.standard_normal((30, 576)).astype(np.float32),
                                   trait="extroverted", model="test", position="response_avg",
                                   method="mean_diff", residual_norms=[100.0] * 30)
    path = vec.save(tmp_path / "rand.safetensors")
    cfg = SweepConfig(vector=str(path), layer=10, coefficients=[-0.2, 0.0, 0.2],
                      relative=True, trait="extroverted", questions=2, items=2, max_tokens=8)
    summary = run_sweep(cfg, tmp_path / "run", progress="off").summary
    # summary.json records what was resolved: the domain, its direction, the vector's hash.
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["kind"] == "sweep" and saved["counts"]["response"] == 6
    assert saved["config"]["scale"] == "E" and saved["config"]["relative"] is True
    assert saved["config"]["vector_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert saved["instrument"]["label"] == "E Extraversion" and saved["instrument"]["sign"] == 1
    render_report(summary, tmp_path / "run")
    assert "| instrument (E Extraversion) |" in (tmp_path / "run" / "sweep.md").read_text()
    assert (tmp_path / "run" / "sweep.svg").read_text().startswith("<svg")
    for row in summary["rows"]:
        assert row["text"]["n"] == 2 and row["instrument"]["n"] == 2
        assert row["perplexity"]["value"] > 1.0
    assert summary["rows"][1]["coherent"]  # the unsteered model is its own baseline
    store = RunStore(tmp_path / "run")
    counts = store.counts()
    store.close()
    again = run_sweep(cfg, tmp_path / "run", progress="off")
    assert again.model_calls == 0
    store = RunStore(tmp_path / "run")
    assert store.counts() == counts
    store.close()
    assert json.dumps(again.summary["rows"]) == json.dumps(summary["rows"])
    # `personae report` and `export` read the records alone: no model is loaded, and the
    # trait and questionnaire the scale came from are not read again.
    import sys

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").startswith("personae") \
                and callable(getattr(module, "load_model", None)):
            monkeypatch.setattr(module, "load_model", refuse)
    (tmp_path / "run" / "report.html").unlink()
    rewritten = rewrite_report(tmp_path / "run")
    assert rewritten["rows"] == json.loads(json.dumps(summary["rows"]))
    assert rewritten["instrument"] == summary["instrument"]
    assert "personae steer sweep report" in (tmp_path / "run" / "report.html").read_text()
    proc = run_cli("export", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(x).name for x in proc.stdout.split()) == [
        "item.jsonl", "measure.jsonl", "response.jsonl"]


def test_sweep_cli_rejects_a_missing_vector_and_a_layer_out_of_range(tmp_path: Path) -> None:
    proc = run_cli("steer", "sweep", "-v", str(tmp_path / "nope.safetensors"), "-l", "3",
                   "-o", str(tmp_path / "run"))
    assert_one_line_error(proc, 2, "nope.safetensors")
    vec = PersonaVector.from_array(np.ones((4, 8), np.float32), trait="extroverted",
                                   model="m", position="response_avg", method="mean_diff")
    path = vec.save(tmp_path / "small.safetensors")
    proc = run_cli("steer", "sweep", "-v", str(path), "-l", "9", "-o", str(tmp_path / "run"))
    assert_one_line_error(proc, 2, "layer 9")
    assert not (tmp_path / "run").exists()


def test_sweep_checks_baseline_norms_and_held_out_questions_before_any_work(
        tmp_path: Path) -> None:
    bare = PersonaVector.from_array(np.ones((4, 8), np.float32), trait="extroverted",
                                    model="m", position="response_avg", method="mean_diff")
    path = bare.save(tmp_path / "bare.safetensors")
    out = tmp_path / "run"
    proc = run_cli("steer", "sweep", "-v", str(path), "-l", "1", "-o", str(out))
    assert_one_line_error(proc, 2, "relative coefficients (--relative, the default) need the "
                          "layers' residual norms", "pass --absolute")
    proc = run_cli("steer", "sweep", "-v", str(path), "-l", "1", "--steps", "4",
                   "--absolute", "-o", str(out))
    assert_one_line_error(proc, 2, "coefficient 0")
    used = PersonaVector.from_array(np.ones((4, 8), np.float32), trait="extroverted",
                                    model="m", position="response_avg", method="mean_diff",
                                    extra={"n_questions": 35})
    path = used.save(tmp_path / "used.safetensors")
    proc = run_cli("steer", "sweep", "-v", str(path), "-l", "1", "--absolute", "-o", str(out))
    assert_one_line_error(proc, 2, "first 35 of the 40", "--questions")
    assert not out.exists()


class _Base:
    """Stands in for the unsteered hf model: the sweep's checks need no weights."""

    capabilities = frozenset({"hidden_states"})
    identity = "stub"
    steerings = ()


def test_sweep_resolves_and_labels_a_reversed_domain(tmp_path: Path) -> None:
    from personae.steer.sweep import Sweep

    vec = PersonaVector.from_array(np.ones((4, 8), np.float32), trait="introverted",
                                   model="m", position="response_avg", method="mean_diff",
                                   residual_norms=[5.0] * 4)
    path = vec.save(tmp_path / "intro.safetensors")
    coefs = [-1.0, -0.5, 0.0, 0.5, 1.0]
    sweep = Sweep(SweepConfig(vector=str(path), layer=1, coefficients=coefs), base=_Base())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (sweep.config.scale, sweep.config.vector_sha256, sweep.sign) == ("E", digest, -1)
    # The stored identity keeps the settings as given, as sweeps stored before did: they
    # resume; the resolved scale goes to the summary.
    assert (sweep.identity["scale"], sweep.identity["vector_sha256"]) == (None, digest)
    assert sweep.scale.label == "E Extraversion, reversed" and sweep.scale.items == 24
    store = RunStore(tmp_path / "run")
    _fill(store, coefs)
    s = summarise(sweep.config, store, {"instrument": sweep.sign}, sweep.scale)
    assert s["config"]["scale"] == "E" and s["config"]["vector_sha256"] == digest
    assert s["instrument"] == {
        "instrument": "ipip-120", "questionnaire": s["instrument"]["questionnaire"],
        "trait": "introverted", "scale": "E", "scale_name": "Extraversion", "sign": -1,
        "items": 24, "direction": "reversed", "label": "E Extraversion, reversed"}
    table = format_table(s)
    assert table.splitlines()[0].startswith(
        "| coefficient (× residual norm) | instrument (E Extraversion, reversed) | text score |")
    assert "- instrument (E Extraversion, reversed): " in table
    assert "domain E (Extraversion), mean keyed item score over 24 items; reversed: " \
        "introverted is expected to lower it." in table
    # An explicit --scale on another domain is scored as keyed; a changed file is refused.
    other = Sweep(SweepConfig(vector=str(path), layer=1, coefficients=coefs, scale="A"),
                  base=_Base())
    assert (other.scale.label, other.sign) == ("A Agreeableness", 1)
    with pytest.raises(InputError, match="the file changed"):
        Sweep(SweepConfig(vector=str(path), layer=1, coefficients=coefs,
                          vector_sha256="0" * 64), base=_Base())


def test_default_run_dir_follows_settings_and_file_contents(tmp_path: Path) -> None:
    from personae.steer.sweep import Sweep

    def vector(scale: float) -> Path:
        v = PersonaVector.from_array(np.full((4, 8), scale, np.float32), trait="introverted",
                                     model="m", position="response_avg", method="mean_diff",
                                     residual_norms=[5.0] * 4)
        return v.save(tmp_path / "intro.safetensors")

    coefs = [-1.0, 0.0, 1.0]
    path = vector(1.0)

    def run_dir(**extra: object) -> Path:
        cfg = SweepConfig(vector=str(path), layer=1, coefficients=coefs, **extra)
        return Sweep(cfg, base=_Base()).default_run_dir()

    first = run_dir()
    assert first.name.startswith("sweep-intro-L1-") and first == run_dir()
    assert run_dir(items=4) != first  # another setting
    vector(2.0)  # the same file name, other contents: an edited vector is a new run
    assert run_dir() != first
