"""Scoring one respondent's answers: reverse keys, scale means, acquiescence, refusals.

Answers are ``{item_id: value or None}``; None (and an item left out) means the respondent
refused or gave nothing parsable. Such items are excluded from every mean and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from personae.instruments.questionnaire import Questionnaire, check_answers
from personae.stats import MetricValue, proportion_ci


def reverse_key(value: float, low: float, high: float) -> float:
    """A reverse-keyed response mirrored on the scale: ``(low + high) - value``.

    >>> reverse_key(2, 1, 5)
    4
    """
    return low + high - value


class ScaleScore(BaseModel):
    """One scale's score: mean and sum of keyed responses over the items answered."""

    model_config = ConfigDict(frozen=True)

    scale: str
    name: str
    domain: str | None = None
    mean: float | None
    sum: float
    n_answered: int
    n_items: int

    @property
    def n_missing(self) -> int:
        """Items of this scale refused or not answered."""
        return self.n_items - self.n_answered


class ScaleScores(BaseModel):
    """Scores for every scale of a questionnaire (domains and facets), with counts."""

    model_config = ConfigDict(frozen=True)

    questionnaire: str
    scales: dict[str, ScaleScore]
    keyed: dict[str, float]
    n_items: int
    n_answered: int
    n_refused: int

    def means(self, *, facets: bool = False) -> dict[str, float | None]:
        """Domain means (``facets=False``) or facet means, by scale id."""
        return {k: s.mean for k, s in self.scales.items() if (s.domain is not None) == facets}

    def sums(self, *, facets: bool = False) -> dict[str, float]:
        """Domain or facet sums of keyed responses (what norm tables are built on)."""
        return {k: s.sum for k, s in self.scales.items() if (s.domain is not None) == facets}


def score_answers(
    questionnaire: Questionnaire, answers: Mapping[Any, int | float | None]
) -> ScaleScores:
    """Reverse-key the answers and score every domain and facet.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> s = score_answers(q, {1: 5, 9: 5, 4: 2})   # item 9 (A) is reverse-keyed
    >>> s.scales["A"].mean, s.scales["A"].n_answered, s.scales["N"].mean
    (1.5, 2, 5.0)
    >>> s.scales["E"].mean is None, s.n_refused
    (True, 117)
    """
    checked = check_answers(questionnaire, answers)
    lo, hi = questionnaire.low, questionnaire.high
    keyed: dict[str, float] = {}
    for item in questionnaire.items:
        value = checked.get(item.id)
        if value is not None:
            keyed[item.id] = reverse_key(value, lo, hi) if item.reversed else value
    members: dict[str, list[str]] = {s.id: [] for s in questionnaire.scales}
    for item in questionnaire.items:
        members[item.scale].append(item.id)
        if item.facet is not None:
            members[item.facet].append(item.id)
    scales: dict[str, ScaleScore] = {}
    for s in questionnaire.scales:
        got = [keyed[i] for i in members[s.id] if i in keyed]
        scales[s.id] = ScaleScore(
            scale=s.id,
            name=s.name,
            domain=s.domain,
            mean=sum(got) / len(got) if got else None,
            sum=float(sum(got)),
            n_answered=len(got),
            n_items=len(members[s.id]),
        )
    return ScaleScores(
        questionnaire=questionnaire.name,
        scales=scales,
        keyed=keyed,
        n_items=len(questionnaire.items),
        n_answered=len(keyed),
        n_refused=len(questionnaire.items) - len(keyed),
    )


def acquiescence_index(
    questionnaire: Questionnaire, answers: Mapping[Any, int | float | None]
) -> float | None:
    """Yea-saying: mean raw (unreversed) agreement over balanced keyed pairs, minus the midpoint.

    Items are grouped by facet (by domain where an item has no facet). In each group with at
    least one answered item of each keying, the group value is the mean of (mean raw response
    to forward-keyed items, mean raw response to reverse-keyed items): a consistent respondent
    who agrees with one and disagrees with the other lands on the midpoint, one who agrees with
    both lands above it. The index is the mean over such groups minus the scale midpoint, so
    0 is none, positive is acquiescence, negative is nay-saying, bounded by ±(high − low)/2.
    This is the balanced-scale definition of Soto et al. (2008) restricted to content-matched
    pairs. None when no group has both keyings answered.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> acquiescence_index(q, {i: 5 for i in range(1, 121)})
    2.0
    >>> acquiescence_index(q, {1: 5})  # no balanced pair answered
    """
    checked = check_answers(questionnaire, answers)
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for item in questionnaire.items:
        value = checked.get(item.id)
        if value is None:
            continue
        fwd, rev = groups.setdefault(item.facet or item.scale, ([], []))
        (rev if item.reversed else fwd).append(value)
    balanced = [(sum(f) / len(f) + sum(r) / len(r)) / 2 for f, r in groups.values() if f and r]
    if not balanced:
        return None
    return sum(balanced) / len(balanced) - questionnaire.midpoint


def refusal_rate(
    questionnaire: Questionnaire, answers: Mapping[Any, int | float | None]
) -> MetricValue:
    """Share of the questionnaire's items refused (None) or left out, with a Wilson interval.

    >>> from personae.instruments import load_questionnaire
    >>> q = load_questionnaire("ipip-120")
    >>> refusal_rate(q, {i: (None if i <= 30 else 3) for i in range(1, 121)}).value
    0.25
    """
    checked = check_answers(questionnaire, answers)
    refused = sum(1 for item in questionnaire.items if checked.get(item.id) is None)
    return proportion_ci(refused, len(questionnaire.items))
