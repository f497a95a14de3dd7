"""Trait shaping prompts and Spearman's rho with its confidence interval, against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from personae.errors import InputError
from personae.instruments.shaping import (
    LEVELS,
    MARKERS,
    shaping_conditions,
    shaping_prompt,
)
from personae.stats import spearman_ci


def test_nine_levels_with_the_papers_qualifiers() -> None:
    lo, hi = MARKERS["E"][0]
    expected = {1: f"extremely {lo}", 2: f"very {lo}", 3: f"I'm {lo},", 4: f"a bit {lo}",
                5: f"neither {lo} nor {hi}", 6: f"a bit {hi}", 7: f"I'm {hi},",
                8: f"very {hi}", 9: f"extremely {hi}"}
    for level, phrase in expected.items():
        assert phrase in shaping_prompt("E", level), level
    # Low levels never mention the high pole and vice versa (except "neither").
    assert "extraverted" not in shaping_prompt("E", 2)
    assert "introverted" not in shaping_prompt("E", 8)
    assert all(f"{lo}" in shaping_prompt("E", 5) for lo, _ in MARKERS["E"])


def test_persona_prompt_comes_first() -> None:
    text = shaping_prompt("A", 9, persona_prompt="You are Rosa, a weaver.")
    assert text.startswith("You are Rosa, a weaver.\n\n")
    assert "extremely friendly" in text


def test_conditions_and_bad_input() -> None:
    conds = shaping_conditions()
    assert len(conds) == 45 and conds[0].id == "shape:N:1" and conds[-1].id == "shape:C:9"
    with pytest.raises(InputError, match="unknown domain 'X'"):
        shaping_prompt("X", 3)
    with pytest.raises(InputError, match="level must be 1-9"):
        shaping_prompt("E", 10)


def _data(seed: int, n: int = 27) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    levels = [LEVELS[k % 9] for k in range(n)]
    scores = [1 + 0.4 * lv + float(rng.normal(0, 0.8)) for lv in levels]
    return levels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rho_and_pearson_variance_ci_match_scipy(seed: int) -> None:
    levels, scores = _data(seed)
    c = spearman_ci(levels, scores, variance="pearson")
    ref = stats.spearmanr(levels, scores)
    assert c.rho == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    assert c.n == 27
    # Fisher z with 1/(n-3) on Spearman's rho is Pearson's interval on the ranks.
    ranks = stats.pearsonr(stats.rankdata(levels), stats.rankdata(scores))
    ci = ranks.confidence_interval(confidence_level=0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))


def test_fieller_variance_is_wider_by_its_factor() -> None:
    levels, scores = _data(3)
    c = spearman_ci(levels, scores, confidence=0.9)
    z, se = math.atanh(c.rho), math.sqrt(1.06 / (27 - 3))
    crit = stats.norm.ppf(0.95)
    assert c.ci_low == pytest.approx(math.tanh(z - crit * se))
    assert c.ci_high == pytest.approx(math.tanh(z + crit * se))
    assert "Fisher z" in c.method


def test_bootstrap_ci_matches_scipy_bootstrap_over_paired_units() -> None:
    levels, scores = _data(4, n=18)
    c = spearman_ci(levels, scores, method="bootstrap", n_resamples=500, seed=11)
    ref = stats.bootstrap((np.array(levels, float), np.array(scores)),
                          lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
                          vectorized=False, n_resamples=500, method="percentile",
                          rng=np.random.default_rng(11))
    assert c.ci_low == pytest.approx(min(ref.confidence_interval.low, c.rho))
    assert c.ci_high == pytest.approx(max(ref.confidence_interval.high, c.rho))
    assert c.ci_low < c.rho < c.ci_high


def test_undefined_cases() -> None:
    assert spearman_ci([1, 2, 3], [2.0, 2.0, 2.0]).rho is None  # no variation
    assert spearman_ci([1], [2.0]).rho is None
    few = spearman_ci([1, 2, 3], [1.0, 3.0, 2.0])  # rho exists, Fisher z needs n >= 4
    assert few.rho == pytest.approx(0.5) and few.ci_low is None
    perfect = spearman_ci(list(LEVELS), [float(x) for x in LEVELS])
    assert perfect.rho == pytest.approx(1.0) and perfect.ci_low == perfect.ci_high
    dropped = spearman_ci([1, 2, 3, 4, 5], [1.0, None, 2.0, 4.0, 3.0])
    assert dropped.n == 4
    with pytest.raises(ValueError, match="differ in length"):
        spearman_ci([1, 2], [1.0])
