"""From a survey run's stored answers to the numbers of its report (``summary.json``).

One *administration* is one respondent (persona or bare model, shaped or not) answering one
variant. Per administration: domain means with a bootstrap CI over the domain's items,
facet means, the acquiescence index, the unparsable rate (Wilson CI) and, in ``logprob``
mode, the coverage. Across administrations: reliability per domain, the spread of domain
means across variants, for shaping runs Spearman's rho of measured score on level, and for
personas with declared ``traits`` the comparison of declared and measured levels
(`declared_vs_measured`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personae import __version__
from personae.errors import InputError
from personae.instruments.administer import ItemAnswer, answers_by_item
from personae.instruments.questionnaire import Questionnaire
from personae.instruments.reliability import cronbach_alpha, mcdonald_omega
from personae.instruments.robustness import variant_spread
from personae.instruments.scoring import acquiescence_index, score_answers
from personae.instruments.shaping import LEVELS
from personae.persona import Persona
from personae.stats import mean_ci, proportion_ci
from personae.stats.correlation import Correlation, pearson_ci, spearman_ci

if TYPE_CHECKING:
    from personae.runtime.store import RunStore
    from personae.survey.run import SurveyPlan

LOW_COVERAGE = 0.5
# Acquiescence beyond this share of its range (±2 on a 1-5 scale, so 0.5) is called out:
# the domain means then say more about agreeing than about the trait.
STRONG_ACQUIESCENCE = 0.25
MAX_DRILL_ROWS = 3000
RELIABILITY_UNITS = ("Rows: administrations (respondent × variant) that answered every item "
                     "of the domain; columns: the domain's items, reverse keys applied")


def domains_of(q: Questionnaire) -> list[tuple[str, str]]:
    return [(s.id, s.name) for s in q.scales if s.domain is None]


def administration(q: Questionnaire, answers: Sequence[ItemAnswer], *, mode: str,
                   ) -> dict[str, Any]:
    """The numbers of one administration (see the module docstring)."""
    values = answers_by_item(answers)
    scores = score_answers(q, values)
    asked = {a.item_id for a in answers}
    domains: dict[str, Any] = {}
    for d, _ in domains_of(q):
        items = [i.id for i in q.items if i.scale == d and i.id in asked]
        if items:
            domains[d] = mean_ci([scores.keyed.get(i) for i in items]).as_dict()
    out: dict[str, Any] = {
        "n_items": len(answers),
        "n_answered": sum(a.value is not None for a in answers),
        "domains": domains,
        "facets": {k: v for k, v in scores.means(facets=True).items() if v is not None},
        "acquiescence": acquiescence_index(q, values),
        "unparsable": proportion_ci(sum(a.value is None for a in answers), len(answers)).as_dict(),
        "coverage": None,
    }
    if mode == "logprob":
        argmax = score_answers(q, answers_by_item(answers, use="argmax")).means()
        out["domains_argmax"] = {d: argmax[d] for d in domains}
        out["coverage"] = mean_ci([a.coverage for a in answers]).as_dict()
    return out


def reliability_section(q: Questionnaire, admins: list[dict[str, Any]],
                        keyed: list[dict[str, float]], items: Sequence[str]) -> dict[str, Any]:
    """Alpha and omega per domain over administrations that answered all its items."""
    out: dict[str, Any] = {"units": RELIABILITY_UNITS, "domains": {}}
    for d, name in domains_of(q):
        cols = [i.id for i in q.items if i.scale == d and i.id in items]
        rows = [[k[i] for i in cols] for k in keyed if all(i in k for i in cols)]
        entry: dict[str, Any] = {"name": name, "n_rows": len(rows), "n_items": len(cols),
                                 "alpha": None, "omega": None, "note": None}
        try:
            entry["alpha"] = cronbach_alpha(rows)
            entry["omega"] = mcdonald_omega(rows)
            if entry["alpha"] is None:
                entry["note"] = "the total score does not vary across administrations"
        except InputError as exc:
            entry["note"] = str(exc).removeprefix("reliability: ")
        out["domains"][d] = entry
    respondents = {a["respondent"] for a in admins}
    variants = {a["variant"] for a in admins}
    if len(respondents) == 1 and len(variants) > 1:
        out["note"] = ("one respondent: the rows are its variants, so alpha and omega say how "
                       "consistently the items rank across ways of asking, not across people")
    return out


def spread_section(admins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per unshaped respondent with two or more variants: spread of each domain's mean."""
    by_resp: dict[str, dict[str, dict[str, float | None]]] = defaultdict(dict)
    labels: dict[str, str] = {}
    for a in admins:
        if a["shape"] is None:
            by_resp[a["respondent"]][a["variant"]] = {d: mv["value"]
                                                      for d, mv in a["domains"].items()}
            labels[a["respondent"]] = a["label"]
    rows = []
    for rid, means in by_resp.items():
        if len(means) < 2:
            continue
        for spread in variant_spread(means).values():
            rows.append({"respondent": rid, "label": labels[rid], **spread.model_dump()})
    return rows


def shaping_section(q: Questionnaire, admins: list[dict[str, Any]],
                    variants: Sequence[str]) -> dict[str, Any] | None:
    shaped = [a for a in admins if a["shape"] is not None]
    if not shaped:
        return None
    rows, points = [], []
    for v in variants:
        for d, name in domains_of(q):
            mine = [a for a in shaped if a["variant"] == v and a["shape"]["domain"] == d
                    and d in a["domains"]]
            if not mine:
                continue
            levels = [a["shape"]["level"] for a in mine]
            scores = [a["domains"][d]["value"] for a in mine]
            c = spearman_ci(levels, scores)
            rows.append({"domain": d, "name": name, "variant": v, **c.model_dump()})
            for level in LEVELS:
                at = [a for a in mine if a["shape"]["level"] == level]
                if not at:
                    continue
                # One unit at a level: its CI over items; several: a CI over the units.
                mv = (at[0]["domains"][d] if len(at) == 1
                      else mean_ci([a["domains"][d]["value"] for a in at]).as_dict())
                points.append({"domain": d, "variant": v, "level": level, **mv})
    return {"rows": rows, "points": points,
            "units": "one administration per (respondent, level); rho over all of them"}


# Persona.traits field → the domain id of the IPIP instruments (and of trait shaping).
TRAIT_DOMAINS = {"neuroticism": "N", "extraversion": "E", "openness": "O",
                 "agreeableness": "A", "conscientiousness": "C"}
TRAIT_SCALE = (1.0, 5.0)  # Persona.traits is declared on this scale (BigFive)
MIN_CORRELATION_N = 3  # pearson_ci's minimum: two points always lie on a line
DECLARED_UNITS = (
    "Measured: the persona's domain mean in its {variant!r} administration (95% CI over "
    "the domain's items). Difference: measured − declared. Per domain, r is over personas; "
    "pooled, over every (persona, domain) pair, which are not independent (up to five "
    "per persona), so the pooled interval is optimistic. Mean differences: 95% bootstrap CI "
    "over the same units.")


@dataclass(frozen=True)
class PersonaLevels:
    """One persona's declared and measured levels, by domain id (plain data).

    ``declared``: level on the instrument's scale; ``measured``: a mean-with-CI dict
    (``value``, ``ci_low``, ``ci_high``, ``n``) as in a summary's ``scores``.
    """

    persona_id: str
    label: str
    declared: Mapping[str, float] = field(default_factory=dict)
    measured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def declared_levels(traits: Mapping[str, float | None], *, low: float = 1.0,
                    high: float = 5.0) -> dict[str, float]:
    """Declared Big Five levels (``Persona.traits``, 1-5) by domain id, on ``[low, high]``.

    IPIP instruments answer on 1-5 too, so there the levels pass unchanged; another
    response scale gets them mapped linearly, so declared and measured stay comparable.

    >>> declared_levels({"extraversion": 4.5, "openness": None})
    {'E': 4.5}
    >>> declared_levels({"neuroticism": 3}, low=0, high=10)
    {'N': 5.0}
    """
    lo, hi = TRAIT_SCALE
    return {TRAIT_DOMAINS[name]: low + (float(v) - lo) * (high - low) / (hi - lo)
            for name, v in traits.items() if v is not None and name in TRAIT_DOMAINS}


def _why_missing(c: Correlation, declared: Sequence[float], measured: Sequence[float],
                 what: str) -> str | None:
    """Why r, or only its interval, is missing (None when both are there)."""
    if c.rho is None:
        if c.n == 0:
            return f"no {what} with both a declared and a measured level"
        if c.n < MIN_CORRELATION_N:
            return (f"needs {MIN_CORRELATION_N} or more {what} with both levels "
                    f"(n = {c.n})")
        if len(set(declared)) == 1:
            return f"the declared levels do not vary (all {declared[0]:g})"
        if len(set(measured)) == 1:
            return f"the measured levels do not vary (all {measured[0]:g})"
        return "undefined"
    if c.ci_low is None:
        if abs(c.rho) >= 1.0:
            return "no CI: |r| = 1 (Fisher z is infinite there)"
        return f"no CI: Fisher z needs n ≥ 4 (n = {c.n})"
    return None


def _agreement(pairs: Sequence[tuple[float, float]], what: str) -> dict[str, Any]:
    """r, mean difference and mean absolute difference over (declared, measured) pairs."""
    declared = [d for d, _ in pairs]
    measured = [m for _, m in pairs]
    c = pearson_ci(declared, measured)
    diffs = [m - d for d, m in pairs]
    return {
        "n": len(pairs),
        "correlation": {"r": c.rho, "ci_low": c.ci_low, "ci_high": c.ci_high, "n": c.n,
                        "p": c.p, "method": c.method,
                        "reason": _why_missing(c, declared, measured, what)},
        "mean_difference": mean_ci(diffs).as_dict(),
        "mean_abs_difference": mean_ci([abs(x) for x in diffs]).as_dict(),
    }


def declared_vs_measured(personas: Sequence[PersonaLevels],
                         domains: Sequence[tuple[str, str]], *,
                         variant: str = "base") -> dict[str, Any] | None:
    """Declared against measured levels: per persona and domain, per domain, pooled.

    Per persona and domain: ``declared``, ``measured`` (with its CI) and ``difference``
    (measured − declared; None when either is missing). Per domain, across personas, and
    pooled over every (persona, domain) pair: Pearson's r with a Fisher z CI (see
    `personae.stats.pearson_ci` for why Pearson), the mean difference and the mean absolute
    difference with bootstrap CIs. An r that is undefined (n < 3, no variation) is None
    with a ``reason``. Personas that declare none of ``domains`` are only listed by id
    (``without_traits``). None when no persona declares a level of any of ``domains``.

    >>> m = {"value": 4.0, "ci_low": 3.5, "ci_high": 4.5, "n": 2}
    >>> out = declared_vs_measured([PersonaLevels("ana", "Ana", {"E": 3.5}, {"E": m})],
    ...                            [("E", "Extraversion")])
    >>> out["personas"][0]["domains"]["E"]["difference"]
    0.5
    >>> out["by_domain"][0]["correlation"]["reason"]
    'needs 3 or more personas with both levels (n = 1)'
    """
    ids = [d for d, _ in domains]
    with_traits = [p for p in personas if any(d in p.declared for d in ids)]
    if not with_traits:
        return None
    rows = []
    pairs: dict[str, list[tuple[float, float]]] = {d: [] for d in ids}
    for p in with_traits:
        cells: dict[str, Any] = {}
        for d in ids:
            declared = p.declared.get(d)
            mv = p.measured.get(d)
            measured = mv.get("value") if mv else None
            difference = None
            if declared is not None and measured is not None:
                difference = float(measured) - float(declared)
                pairs[d].append((float(declared), float(measured)))
            cells[d] = {"declared": declared, "measured": dict(mv) if mv else None,
                        "difference": difference}
        rows.append({"persona_id": p.persona_id, "label": p.label, "domains": cells})
    return {
        "variant": variant,
        "units": DECLARED_UNITS.format(variant=variant),
        "personas": rows,
        "without_traits": [p.persona_id for p in personas
                           if not any(d in p.declared for d in ids)],
        "by_domain": [{"domain": d, "name": name, **_agreement(pairs[d], "personas")}
                      for d, name in domains],
        "pooled": _agreement([x for d in ids for x in pairs[d]], "(persona, domain) pairs"),
    }


def declared_section(q: Questionnaire, personas: Sequence[Persona],
                     admins: Sequence[Mapping[str, Any]],
                     variants: Sequence[str]) -> dict[str, Any] | None:
    """`declared_vs_measured` for a run: each persona's unshaped administration of the
    ``base`` variant (or, in a run without it, the first variant) is what is measured."""
    if not variants:
        return None
    variant = "base" if "base" in variants else variants[0]
    measured = {a["persona_id"]: a["domains"] for a in admins
                if a["shape"] is None and a["variant"] == variant and a["persona_id"]}
    levels = [PersonaLevels(p.id, p.name or p.id,
                            declared_levels(p.traits.as_dict() if p.traits else {},
                                            low=q.low, high=q.high),
                            measured.get(p.id, {}))
              for p in personas]
    return declared_vs_measured(levels, domains_of(q), variant=variant)


def build_summary(run: SurveyPlan, store: RunStore, *, failures: Sequence[str] = (),
                  notes: Sequence[str] = ()) -> dict[str, Any]:
    """The whole summary of a survey run from its plan and stored answers, ready for
    ``summary.json`` and the report; ``notes`` lead its warnings (e.g. the bundled model's)."""
    q, cfg = run.questionnaire, run.config
    stored = run.stored(store)
    admins: list[dict[str, Any]] = []
    keyed: list[dict[str, float]] = []
    drill: list[dict[str, Any]] = []
    all_answers: list[ItemAnswer] = []
    for r in run.respondents:
        for v in run.variants:
            got = stored.get((r.id, v.id), {})
            answers = [got[i] for i in (r.items or run.items) if i in got]
            if not answers:
                continue
            all_answers += answers
            block = administration(q, answers, mode=cfg.mode)
            admins.append({
                "respondent": r.id, "label": r.label,
                "persona_id": r.persona.id if r.persona else None,
                "shape": ({"domain": r.shaping.domain, "level": r.shaping.level}
                          if r.shaping else None),
                "variant": v.id, **block})
            keyed.append(score_answers(q, answers_by_item(answers)).keyed)
            if r.shaping is None:
                drill += [{"label": r.label, "variant": v.id, "item_id": a.item_id,
                           "text": q.item(a.item_id).text, "domain": q.item(a.item_id).scale,
                           "reversed": q.item(a.item_id).reversed, "value": a.value,
                           "argmax": a.argmax, "coverage": a.coverage, "raw": a.raw,
                           "position": a.position}
                          for a in answers]
    n_unparsable = sum(a.value is None for a in all_answers)
    coverage = [a.coverage for a in all_answers if a.coverage is not None]
    warnings: list[str] = list(notes)
    if n_unparsable:
        warnings.append(f"{n_unparsable} of {len(all_answers)} answers were unparsable or "
                        "refused; they are left out of the scores (never counted as a value) "
                        "and counted in the unparsable rate.")
    if coverage and sum(coverage) / len(coverage) < LOW_COVERAGE:
        warnings.append(f"Mean coverage is {sum(coverage) / len(coverage):.2f}: the model put "
                        "most of its probability on something other than the response values, "
                        "so the expected values rest on little mass.")
    if cfg.mode == "logprob" and any(a.prefill == "" for a in all_answers):
        warnings.append("The model could not prefill the answer ('My answer: '); logprobs "
                        "were read from the first token of the reply instead.")
    acq = [a["acquiescence"] for a in admins if a["acquiescence"] is not None]
    half = (q.high - q.low) / 2
    strong = [x for x in acq if abs(x) >= STRONG_ACQUIESCENCE * half]
    if strong:
        worst = max(strong, key=abs)
        warnings.append(
            f"Strong {'acquiescence' if worst > 0 else 'nay-saying'} in {len(strong)} of "
            f"{len(acq)} administrations (up to {worst:+.2f} on ±{half:g}): "
            f"the respondent {'agrees' if worst > 0 else 'disagrees'} with items and their "
            "reversals alike, so domain means near the midpoint reflect that, not a trait.")
    if failures:
        warnings.append(f"{len(failures)} items could not be administered (first: "
                        f"{failures[0]}); re-run the same command to retry them.")
    truncated = len(drill) > MAX_DRILL_ROWS
    expected = sum(len(r.items or run.items) for r in run.respondents) * len(run.variants)
    return {
        "run": {
            "run_dir": str(store.run_dir), "created": store.get_meta("created"),
            "personae_version": __version__, "model": cfg.model, "model_identity":
            store.config().get("model_identity"), "instrument": cfg.instrument, "questionnaire": q.name,
            "title": q.title or q.name, "source": q.source, "licence": q.licence,
            "mode": cfg.mode, "variants": [v.id for v in run.variants],
            "variant_prompts": {v.id: v.prompt_id for v in run.variants},
            "shape": cfg.shape, "personas": cfg.personas, "n_personas": len(run.personas),
            "n_respondents": len(run.respondents), "n_items": len(run.items),
            "items_in_instrument": len(q.items), "seed": cfg.seed,
            "block_size": cfg.block_size,
            "counts": {"answers": len(all_answers), "expected": expected,
                       "unparsable": n_unparsable, "failed_calls": len(failures)},
            "duration_s": round(float(store.get_meta("duration_s") or 0), 1),
        },
        "warnings": warnings,
        "domains": [{"id": d, "name": n} for d, n in domains_of(q)],
        "scores": admins,
        "reliability": reliability_section(q, admins, keyed, run.items),
        "spread": spread_section(admins),
        "shaping": shaping_section(q, admins, [v.id for v in run.variants]),
        "declared_vs_measured": declared_section(q, run.personas, admins,
                                                 [v.id for v in run.variants]),
        "records": drill[:MAX_DRILL_ROWS],
        "records_truncated": truncated,
    }
