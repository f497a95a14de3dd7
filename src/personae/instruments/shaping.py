"""Trait shaping: prompt a Big Five domain at graded levels, then measure it.

After Serapio-García et al., "Personality Traits in Large Language Models" (2023): each
domain is described by bipolar adjective markers (after Goldberg's 1992 unipolar/bipolar
markers; the short lists here are our own selection, not the paper's full table), at nine
levels whose qualifiers come from a Likert-type scale: 1 "extremely" low, 2 "very" low,
3 low, 4 "a bit" low, 5 "neither low nor high", 6 "a bit" high, 7 high, 8 "very" high,
9 "extremely" high. The prompt goes in the system turn, after the persona's own system
prompt when there is one. A model that follows it gives domain scores that rise with the
level: Spearman's rho between prompted level and measured score says how well.

The confidence interval of rho is Fisher's z with the Fieller-Hartley-Pearson variance
``1.06 / (n − 3)`` by default; a paired bootstrap over units (level, score) is available.
Units are whatever was measured at a level: one administration per (persona, level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from personae.errors import InputError

LEVELS: tuple[int, ...] = tuple(range(1, 10))
DOMAINS: tuple[str, ...] = ("N", "E", "O", "A", "C")
DOMAIN_NAMES = {"N": "neuroticism", "E": "extraversion", "O": "openness to experience",
                "A": "agreeableness", "C": "conscientiousness"}
_QUALIFIERS = {1: "extremely", 2: "very", 3: "", 4: "a bit", 6: "a bit", 7: "", 8: "very",
               9: "extremely"}
# (low pole, high pole) markers per domain; the high pole of N is the neurotic one.
MARKERS: dict[str, tuple[tuple[str, str], ...]] = {
    "E": (("introverted", "extraverted"), ("unenergetic", "energetic"), ("silent", "talkative"),
          ("timid", "bold"), ("inactive", "active"), ("unassertive", "assertive")),
    "A": (("unfriendly", "friendly"), ("uncooperative", "cooperative"),
          ("distrustful", "trustful"), ("stingy", "generous"), ("dishonest", "honest"),
          ("harsh", "kind")),
    "C": (("disorganized", "organized"), ("irresponsible", "responsible"),
          ("careless", "thorough"), ("lazy", "hardworking"), ("impractical", "practical"),
          ("undependable", "dependable")),
    "N": (("relaxed", "tense"), ("at ease", "nervous"), ("calm", "anxious"),
          ("secure", "insecure"), ("emotionally stable", "moody"),
          ("contented", "discontented")),
    "O": (("unimaginative", "imaginative"), ("uncreative", "creative"),
          ("uninquisitive", "curious"), ("unreflective", "reflective"),
          ("unartistic", "artistic"), ("unsophisticated", "sophisticated")),
}
_LEAD = "For the following task, respond in a way that matches this description: "


class ShapingCondition(BaseModel):
    """One domain prompted at one level (1-9)."""

    model_config = ConfigDict(frozen=True)

    domain: str
    level: int

    @property
    def id(self) -> str:
        return f"shape:{self.domain}:{self.level}"


def shaping_conditions(domains: Sequence[str] = DOMAINS,
                       levels: Sequence[int] = LEVELS) -> list[ShapingCondition]:
    """Every (domain, level) pair, domain by domain."""
    for d in domains:
        _check(d, 5)
    for lv in levels:
        _check("E", lv)
    return [ShapingCondition(domain=d, level=lv) for d in domains for lv in levels]


def _check(domain: str, level: int) -> None:
    if domain not in MARKERS:
        raise InputError(f"trait shaping: unknown domain {domain!r}; shaping knows the Big "
                         f"Five domains {', '.join(DOMAINS)}")
    if level not in LEVELS:
        raise InputError(f"trait shaping: level must be 1-9, got {level!r}")


def shaping_prompt(domain: str, level: int, *, persona_prompt: str | None = None) -> str:
    """The system prompt that asks for ``domain`` at ``level`` (after a persona's prompt).

    >>> shaping_prompt("E", 8).split(": ", 1)[1][:45]
    "I'm very extraverted, very energetic, very ta"
    >>> shaping_prompt("E", 3)[-25:]
    'inactive and unassertive.'
    >>> shaping_prompt("E", 5).split(": ", 1)[1][:52]
    "I'm neither introverted nor extraverted, neither une"
    >>> shaping_prompt("C", 3, persona_prompt="You are Ana.").splitlines()[0]
    'You are Ana.'
    """
    _check(domain, level)
    if level == 5:
        parts = [f"neither {lo} nor {hi}" for lo, hi in MARKERS[domain]]
    else:
        pole = 0 if level < 5 else 1
        q = _QUALIFIERS[level]
        parts = [f"{q} {pair[pole]}".strip() for pair in MARKERS[domain]]
    text = f"{_LEAD}I'm {', '.join(parts[:-1])} and {parts[-1]}."
    return f"{persona_prompt}\n\n{text}" if persona_prompt else text


class Correlation(BaseModel):
    """Spearman's rho with a confidence interval, n and the two-sided p-value.

    ``rho`` is None when it is undefined (fewer than 2 units, or no variation on one side);
    the interval is None when it cannot be estimated (Fisher z needs n ≥ 4).
    """

    model_config = ConfigDict(frozen=True)

    rho: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int
    p: float | None = None
    method: str


def spearman_ci(levels: Sequence[float], scores: Sequence[float | None], *,
                confidence: float = 0.95,
                method: Literal["fisher", "bootstrap"] = "fisher",
                variance: Literal["fieller", "pearson"] = "fieller",
                n_resamples: int = 2000, seed: int = 0) -> Correlation:
    """Spearman's rho between prompted levels and measured scores, with a CI.

    Pairs with a missing score are dropped (n counts the rest). ``fisher``: ``tanh(atanh(ρ)
    ± z·se)`` with ``se² = 1.06/(n−3)`` (Fieller, Hartley & Pearson 1957; ``variance=
    "pearson"`` uses Pearson's ``1/(n−3)``); ``bootstrap``: percentile interval of rho over
    ``n_resamples`` paired resamples of the units (scipy), reproducible for a ``seed``.

    >>> c = spearman_ci([1, 2, 3, 4, 5, 6, 7, 8, 9], [1.2, 1.9, 1.5, 2.8, 3.0, 3.1, 4.2, 3.9, 4.5])
    >>> round(c.rho, 3), round(c.ci_low, 3), round(c.ci_high, 3), c.n
    (0.967, 0.838, 0.993, 9)
    """
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if len(levels) != len(scores):
        raise ValueError(f"levels and scores differ in length: {len(levels)} vs {len(scores)}")
    pairs = [(float(x), float(y)) for x, y in zip(levels, scores, strict=True)
             if y is not None and math.isfinite(float(y))]
    n = len(pairs)
    label = (f"Fisher z ({variance} variance)" if method == "fisher"
             else f"bootstrap percentile ({n_resamples} paired resamples)")
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    if n < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return Correlation(rho=None, n=n, method=label)
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    p_value = p if math.isfinite(p) else None
    low: float | None = None
    high: float | None = None
    if method == "fisher":
        if n >= 4:
            if abs(rho) >= 1.0:
                low = high = rho  # atanh(±1) is infinite: no spread to put an interval on
            else:
                se = math.sqrt((1.06 if variance == "fieller" else 1.0) / (n - 3))
                z, crit = math.atanh(rho), float(stats.norm.ppf(0.5 + confidence / 2))
                low, high = math.tanh(z - crit * se), math.tanh(z + crit * se)
    elif method == "bootstrap":
        boot = stats.bootstrap(
            (x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
            vectorized=False, n_resamples=n_resamples, confidence_level=confidence,
            method="percentile", rng=np.random.default_rng(seed))
        lo, hi = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            low, high = min(lo, rho), max(hi, rho)
    else:
        raise ValueError(f"unknown method {method!r}: use fisher or bootstrap")
    return Correlation(rho=rho, ci_low=low, ci_high=high, n=n, p=p_value, method=label)
