"""From a run's stored records to the numbers of its report (``summary.json``).

Pure aggregation over the store's records: every mean carries a bootstrap CI and its n,
every persona-minus-control delta a paired bootstrap CI, and judged scores sit next to the
judge-reliability verdict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from personae import __version__
from personae.evals import atomic, reliability
from personae.evals.config import CONDITIONS, EvalConfig
from personae.evals.engine import target_trait
from personae.evals.personagym import persona_score, question_mean
from personae.judge import nli as consistency
from personae.models.spec import is_bundled
from personae.persona import Persona
from personae.runtime.store import RunStore
from personae.stats import mean_ci, paired_delta_ci

SMALL_JUDGE_WARNING = (
    "The judge is the bundled SmolLM2-135M: far too small to grade role-play. Its scores "
    "show that the pipeline works, not how faithful the personas are; use --judge with a "
    "capable model for real measurements.")


def _first_sample(record: dict[str, Any]) -> bool:
    """Whether a judgement is about a first sample. The report compares conditions on one
    answer per probe (the controls have one), so its numbers stay on sample 0; extra samples
    are graded for ranking them against each other (evals.training). Records from before
    extra samples were graded have no ``sample``: they are all about sample 0."""
    return record.get("sample", 0) == 0


def _judged(store: RunStore, config: EvalConfig, variant: str = "main") -> list[dict[str, Any]]:
    """Rubric judgements of this run's judges (a rescored run keeps other judges' too), of
    first samples."""
    return [r for _, r in store.items("judgement")
            if r["variant"] == variant and r["judge"] in config.judges and _first_sample(r)]


def _first_judge(store: RunStore, config: EvalConfig, kind: str) -> list[dict[str, Any]]:
    return [r for _, r in store.items(kind) if r["judge"] == config.judges[0]]


def fidelity_section(store: RunStore, config: EvalConfig,
                     personas: Sequence[Persona]) -> dict[str, Any] | None:
    judgements = _judged(store, config)
    if not judgements:
        return None
    tasks = list(config.tasks)
    scores: dict[str, list[float | None]] = defaultdict(list)  # response key -> judges' scores
    meta: dict[str, dict[str, Any]] = {}
    for j in judgements:
        scores[j["response_key"]].append(j["score"])
        meta[j["response_key"]] = j
    pids = list(dict.fromkeys(m["persona_id"] for m in meta.values()))

    def rows(condition: str, pid: str | None = None) -> list[tuple[str, str, float | None]]:
        return [(meta[k]["task"], k, s) for k, ss in scores.items()
                if meta[k]["condition"] == condition and pid in (None, meta[k]["persona_id"])
                for s in ss]

    by_condition: dict[str, Any] = {}
    totals: dict[str, dict[str, float | None]] = {}  # condition -> persona -> PersonaScore
    for condition in CONDITIONS:
        if not rows(condition):
            continue
        _, task_scores = persona_score(rows(condition))
        totals[condition] = {pid: persona_score(rows(condition, pid), tasks=tasks)[0]
                             for pid in pids}
        by_condition[condition] = {
            # Task scores: CI over questions. PersonaScore: CI over personas.
            "tasks": {t: mean_ci(list(task_scores[t].question_means) if t in task_scores
                                 else []).as_dict() for t in tasks},
            "persona_score": mean_ci(list(totals[condition].values())).as_dict(),
            "unparsable": {t: task_scores[t].unparsable if t in task_scores else 0
                           for t in tasks},
        }
    # probe -> condition -> mean of the judges, for deltas paired on the same question
    paired: dict[str, dict[str, float | None]] = defaultdict(dict)
    for k, ss in scores.items():
        paired[k.rsplit("|", 2)[0]][meta[k]["condition"]] = question_mean(ss)
    task_of = {k.rsplit("|", 2)[0]: m["task"] for k, m in meta.items()}
    deltas: dict[str, Any] = {}
    for control in CONDITIONS[1:]:
        if control not in totals or "persona" not in totals:
            continue
        by_task = {}
        for task in tasks:
            probes = [p for p in paired if task_of[p] == task]
            by_task[task] = paired_delta_ci([paired[p].get("persona") for p in probes],
                                            [paired[p].get(control) for p in probes]).as_dict()
        deltas[control] = {"tasks": by_task, "persona_score": paired_delta_ci(
            [totals["persona"][pid] for pid in pids],
            [totals[control][pid] for pid in pids]).as_dict()}
    names = {p.id: p.name or p.id for p in personas}
    per_persona = []
    for pid in pids:
        total, ts = persona_score(rows("persona", pid), tasks=tasks)
        per_persona.append({"persona_id": pid, "name": names.get(pid, pid),
                            "tasks": {t: ts[t].value if t in ts else None for t in tasks},
                            "persona_score": total})
    return {"tasks": tasks, "by_condition": by_condition, "deltas": deltas,
            "per_persona": per_persona}


def reliability_section(store: RunStore, config: EvalConfig) -> dict[str, Any]:
    main = _judged(store, config)
    judges = config.judges
    # raters × units over every (response) unit graded by the judges
    units = sorted({j["response_key"] for j in main})
    table = {(j["judge"], j["response_key"]): j["score"] for j in main}
    inter = reliability.alpha_check(
        "inter_judge_alpha", "Agreement between judges (Krippendorff's α, ordinal)",
        [[table.get((judge, u)) for u in units] for judge in judges] if len(judges) > 1 else [],
        missing_note="not measured: one judge (pass --judge twice to measure it)")
    # The reliability variants are asked of the first judge only.
    retest = {v: {j["response_key"]: j["score"] for j in _judged(store, config, v)
                  if j["judge"] == config.judges[0]}
              for v in ("retest1", "retest2", "reversed")}
    sample_units = sorted(set(retest["retest1"]) & set(retest["retest2"]))
    test_retest = reliability.alpha_check(
        "test_retest_alpha",
        "Test–retest: the same judge sampled twice at temperature 1 (Krippendorff's α)",
        [[retest[v][u] for u in sample_units] for v in ("retest1", "retest2")]
        if sample_units else [],
        missing_note="not measured (reliability sample is empty)")
    own = {j["response_key"]: j["score"] for j in main if j["judge"] == config.judges[0]}
    order_units = sorted(set(retest["reversed"]) & set(own))
    order = (reliability.order_check([own[u] for u in order_units],
                                     [retest["reversed"][u] for u in order_units])
             if order_units else reliability.Check(
                 "order_sensitivity", "Order sensitivity", None, None,
                 "not measured (reliability sample is empty)"))
    roles = _first_judge(store, config, "role")
    k = min(config.role_options, max(len(r["options"]) for r in roles)) if roles else \
        config.role_options
    role = reliability.role_check(
        [r["chosen"] == r["answer"] for r in roles if r["chosen"] is not None], k,
        unparsable=sum(r["chosen"] is None for r in roles))
    parsed = reliability.parse_check(sum(j["score"] is not None for j in main), len(main))
    checks = [parsed, inter, test_retest, order, role]
    ok, text = reliability.verdict(checks)
    return {"threshold": reliability.ALPHA_THRESHOLD, "reliable": ok, "verdict": text,
            "checks": [c.as_dict() for c in checks]}


def consistency_section(store: RunStore, config: EvalConfig,
                        personas: Sequence[Persona]) -> dict[str, Any] | None:
    nli = [r for r in _first_judge(store, config, "nli") if _first_sample(r)]
    if not nli:
        return None
    by_response: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in nli:
        by_response[r["response_key"]].append(r)
    by_condition = {}
    for condition in CONDITIONS:
        scores = [consistency.c_score([r["label"] for r in rows])
                  for rows in by_response.values() if rows[0]["condition"] == condition]
        if scores:
            by_condition[condition] = mean_ci(scores).as_dict()
    labels = Counter(r["label"] or "unparsable" for r in nli)
    per_persona = []
    for p in personas:
        rows = [r for r in nli if r["persona_id"] == p.id and r["condition"] == "persona"]
        if not rows:
            continue
        grouped = defaultdict(list)
        for r in rows:
            grouped[r["response_key"]].append(r["label"])
        per_persona.append({
            "persona_id": p.id, "name": p.name or p.id,
            "c_score": mean_ci([consistency.c_score(v) for v in grouped.values()]).as_dict(),
            "contradicted": consistency.contradicted((r["fact"], r["label"]) for r in rows)})
    return {"by_condition": by_condition,
            "labels": {lb: labels.get(lb, 0) for lb in (*consistency.LABELS, "unparsable")},
            "per_persona": per_persona}


def atomic_section(store: RunStore, config: EvalConfig,
                   personas: Sequence[Persona]) -> dict[str, Any] | None:
    atoms = _first_judge(store, config, "atom")
    samples = config.samples
    if not atoms:
        return None
    codes = Counter(r["score"] for r in atoms)
    per_persona = []
    for p in personas:
        mine = [r for r in atoms if r["persona_id"] == p.id]
        target = target_trait(p)
        if not mine or target is None:
            continue
        probes = list(dict.fromkeys(r["probe_id"] for r in mine))
        nested = [[[r["score"] for r in sorted(mine, key=lambda r: r["index"])
                    if r["sample"] == g and r["probe_id"] == q] for q in probes]
                  for g in range(samples)]
        values = atomic.atomic_fidelity(nested, target[1])
        per_persona.append({"persona_id": p.id, "name": p.name or p.id,
                            "trait": atomic.TRAIT_NAMES[target[0]].capitalize()
                            if target[0] in atomic.TRAIT_NAMES else target[0],
                            "target": target[1], **values,
                            "n_atoms": sum(r["score"] in atomic.VALID_SCORES for r in mine)})
    overall = {m: mean_ci([row[m] for row in per_persona]).as_dict()
               for m in ("acc_atom", "ic_atom", "rc_atom")}
    return {"per_persona": per_persona, "overall": overall,
            "codes": {"no_trait": codes.get(atomic.NO_TRAIT, 0),
                      "refusal": codes.get(atomic.REFUSAL, 0),
                      "unparsable": codes.get(atomic.UNPARSABLE, 0)}}


def drilldown(store: RunStore, config: EvalConfig,
              personas: Sequence[Persona]) -> list[dict[str, Any]]:
    names = {p.id: p.name or p.id for p in personas}
    judged: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in _judged(store, config):
        judged[j["response_key"]].append({"judge": j["judge"], "score": j["score"],
                                          "raw": j["raw"]})
    nli: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _first_judge(store, config, "nli"):
        nli[r["response_key"]].append({"fact": r["fact"], "label": r["label"]})
    return [{"persona_id": r["persona_id"], "persona_name": names.get(r["persona_id"],
                                                                     r["persona_id"]),
             "condition": r["condition"], "task": r["task"], "probe_id": r["probe_id"],
             "question": r["question"], "response": r["text"], "error": None,
             "judgements": judged.get(key, []), "nli": nli.get(key, [])}
            for key, r in store.items("response") if r["sample"] == 0]


def build_summary(store: RunStore, config: EvalConfig, personas: Sequence[Persona], *,
                  failures: Sequence[str] = (), notes: Sequence[str] = (),
                  duration_s: float = 0.0) -> dict[str, Any]:
    """The whole summary of a run, ready for ``summary.json`` and the HTML report."""
    rel = reliability_section(store, config)
    fidelity = fidelity_section(store, config, personas)
    if fidelity is not None:
        fidelity["reliable"] = rel["reliable"]
    judgements = _judged(store, config)
    warnings = []
    if any(is_bundled(j) for j in config.judges):
        warnings.append(SMALL_JUDGE_WARNING)
    if not rel["reliable"]:
        warnings.append(f"Judged scores are unreliable: {rel['verdict']}.")
    unparsable = sum(j["score"] is None for j in judgements)
    if unparsable:
        warnings.append(f"{unparsable} of {len(judgements)} judgements could not be parsed; "
                        "they are excluded from the scores (never counted as 0).")
    warnings += list(notes)
    if failures:
        warnings.append(f"{len(failures)} model calls failed (first: {failures[0]}); "
                        "re-run the same command to retry them.")
    counts = store.counts()
    return {
        "run": {
            "run_dir": str(store.run_dir), "created": store.get_meta("created"),
            "personae_version": __version__, "subject": config.model, "judges": config.judges,
            "suites": config.suites, "questions": config.questions,
            "n_personas": len(personas), "n_probes": counts.get("probe", 0),
            "conditions": list(CONDITIONS),
            "counts": {"responses": counts.get("response", 0), "judgements": len(judgements),
                       "unparsable_judgements": unparsable, "failed_calls": len(failures)},
            "duration_s": round(duration_s, 1),
        },
        "warnings": warnings,
        "fidelity": fidelity,
        "consistency": consistency_section(store, config, personas),
        "atomic": atomic_section(store, config, personas),
        "reliability": rel,
        "records": drilldown(store, config, personas),
    }

