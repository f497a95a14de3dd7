"""IPIP-NEO norm scores: raw sums → T-scores → percentiles, as five-factor-e publishes them.

Johnson's IPIP-NEO norms give a mean and SD of each domain's and facet's raw sum for groups of
respondents by sex and age. ``T = 50 + 10·(sum − mean)/SD``; the percentile is the cubic
approximation ``c0 − c1·T + c2·T² − c3·T³``, set to 1 below T = 32 and 99 above T = 73 where the
cubic leaves [1, 99]. Norms exist only for complete answers, so any refused item is an error.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from personae.errors import InputError
from personae.instruments.scoring import ScaleScores


@lru_cache(maxsize=1)
def _norms() -> dict[str, Any]:
    ref = resources.files("personae.instruments").joinpath("data", "ipip-neo-norms.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def t_to_percentile(t: float) -> float:
    """Percentile for a T-score by the published cubic, clipped to 1 and 99 outside [32, 73].

    >>> round(t_to_percentile(50.0), 2), t_to_percentile(20.0), t_to_percentile(80.0)
    (50.0, 1, 99)
    """
    norms = _norms()
    c0, c1, c2, c3 = norms["percentile_cubic"]
    low, high = norms["t_clip"]
    if t < low:
        return 1
    if t > high:
        return 99
    return c0 - c1 * t + c2 * t**2 - c3 * t**3


def norm_group(instrument: str, sex: str, age: int) -> dict[str, Any]:
    """The norm table for ``instrument`` (``ipip-120``/``ipip-300``), sex M, F or N, and age.

    >>> norm_group("ipip-120", "F", 65)["category"]
    'women over 60 years old'
    """
    sex = sex.upper()
    if sex not in ("M", "F", "N"):
        raise InputError(f"norms: sex must be M, F or N (combined norms), got {sex!r}")
    for g in _norms()["groups"]:
        if (
            g["instrument"] == instrument
            and g["sex"] == sex
            and g["age_min"] <= age <= g["age_max"]
        ):
            return g
    known = sorted({g["instrument"] for g in _norms()["groups"]})
    if instrument not in known:
        raise InputError(f"norms: no norms for {instrument!r} (have {', '.join(known)})")
    raise InputError(f"norms: age must be between 10 and 110, got {age}")


def ipip_neo_norm_scores(scores: ScaleScores, *, sex: str, age: int) -> dict[str, dict[str, float]]:
    """T-scores and percentiles of every domain and facet, as five-factor-e reports them.

    Returns ``{"t": {scale: T}, "percentile": {scale: pct}}`` over domains N E O A C and
    facets N1…C6.

    >>> from personae.instruments import load_questionnaire, score_answers
    >>> q = load_questionnaire("ipip-120")
    >>> s = score_answers(q, {i: 3 for i in range(1, 121)})
    >>> round(ipip_neo_norm_scores(s, sex="M", age=30)["percentile"]["N"], 1)
    60.8
    """
    instrument = scores.questionnaire
    group = norm_group(instrument, sex, age)
    if scores.n_refused:
        raise InputError(
            f"norms: {instrument} norms need every item answered; {scores.n_refused} refused"
        )
    t: dict[str, float] = {}
    for kind in ("domain", "facet"):
        for scale, raw in scores.sums(facets=kind == "facet").items():
            t[scale] = 50 + 10 * (raw - group[f"{kind}_mean"][scale]) / group[f"{kind}_sd"][scale]
    return {"t": t, "percentile": {k: t_to_percentile(v) for k, v in t.items()}}
