"""Declared vs measured traits as a pure function: hand-computed numbers and the edge cases
(one persona, missing traits, constant levels, domains not asked)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from personae.survey.summary import (
    PersonaLevels,
    declared_levels,
    declared_vs_measured,
)

E_O = [("E", "Extraversion"), ("O", "Openness")]


def mv(value: float, n: int = 2) -> dict[str, Any]:
    return {"value": value, "ci_low": value - 0.5, "ci_high": value + 0.5, "n": n}


def three() -> list[PersonaLevels]:
    return [
        PersonaLevels("a", "Ann", {"E": 2.0, "O": 4.0}, {"E": mv(2.5), "O": mv(4.0)}),
        PersonaLevels("b", "Bo", {"E": 3.0, "O": 3.0}, {"E": mv(3.0), "O": mv(3.5)}),
        PersonaLevels("c", "Cy", {"E": 4.0, "O": 2.0}, {"E": mv(4.5), "O": mv(2.0)}),
        PersonaLevels("d", "Di", {}, {"E": mv(3.0), "O": mv(3.0)}),  # no traits declared
    ]


def test_hand_computed_per_persona_per_domain_and_pooled() -> None:
    out = declared_vs_measured(three(), E_O)
    assert out is not None and out["variant"] == "base"
    assert [p["persona_id"] for p in out["personas"]] == ["a", "b", "c"]
    assert out["without_traits"] == ["d"]
    ann = out["personas"][0]["domains"]
    assert ann["E"] == {"declared": 2.0, "measured": mv(2.5), "difference": 0.5}
    assert ann["O"]["difference"] == 0.0
    e, o = out["by_domain"]
    assert (e["domain"], e["name"], e["n"]) == ("E", "Extraversion", 3)
    # E: declared 2, 3, 4 against 2.5, 3, 4.5. Centred: (-1, 0, 1) and (-5/6, -1/3, 7/6):
    # Sxy = 2, Sxx = 2, Syy = 13/6, so r = 2 / sqrt(2 · 13/6) = sqrt(12/13).
    assert e["correlation"]["r"] == pytest.approx(math.sqrt(12 / 13))
    assert e["correlation"]["ci_low"] is None  # n = 3: Fisher z needs 4
    assert e["correlation"]["reason"] == "no CI: Fisher z needs n ≥ 4 (n = 3)"
    assert e["correlation"]["method"].startswith("Pearson r")
    assert e["mean_difference"]["value"] == pytest.approx(1 / 3)  # (0.5 + 0 + 0.5) / 3
    assert e["mean_abs_difference"]["value"] == pytest.approx(1 / 3)
    # O: declared 4, 3, 2 against 4, 3.5, 2: the mirror image, the same r.
    assert o["correlation"]["r"] == pytest.approx(math.sqrt(12 / 13))
    assert o["mean_difference"]["value"] == pytest.approx(1 / 6)
    pooled = out["pooled"]
    # Six pairs; x centred (-1, 0, 1, 1, 0, -1), y centred (-.75, -.25, 1.25, .75, .25, -1.25):
    # Sxy = 4, Sxx = 4, Syy = 4.375, r = 4 / sqrt(17.5).
    r = 4 / math.sqrt(17.5)
    c = pooled["correlation"]
    assert pooled["n"] == c["n"] == 6 and c["r"] == pytest.approx(r)
    half = 1.959963984540054 / math.sqrt(6 - 3)
    assert c["ci_low"] == pytest.approx(math.tanh(math.atanh(r) - half))
    assert c["ci_high"] == pytest.approx(math.tanh(math.atanh(r) + half))
    assert c["reason"] is None
    assert pooled["mean_difference"]["value"] == pytest.approx(0.25)  # 1.5 / 6
    assert pooled["mean_abs_difference"]["value"] == pytest.approx(0.25)
    assert pooled["mean_difference"]["n"] == 6


def test_perfect_agreement_is_r_one_with_no_interval_and_zero_differences() -> None:
    people = [PersonaLevels(str(k), str(k), {"E": x}, {"E": mv(x)})
              for k, x in enumerate([1.5, 2.0, 3.5, 4.0, 5.0])]
    out = declared_vs_measured(people, [("E", "Extraversion")])
    assert out is not None
    c = out["by_domain"][0]["correlation"]
    assert c["r"] == 1.0 and c["n"] == 5 and c["ci_low"] is None and c["p"] == 0.0
    assert "|r| = 1" in c["reason"]
    assert out["by_domain"][0]["mean_abs_difference"]["value"] == 0.0
    assert all(p["domains"]["E"]["difference"] == 0.0 for p in out["personas"])


def test_one_persona_gives_no_per_domain_r_but_a_pooled_one() -> None:
    one = [PersonaLevels("a", "Ann", {"E": 2.0, "O": 4.0}, {"E": mv(2.5), "O": mv(3.0)})]
    out = declared_vs_measured(one, E_O)
    assert out is not None
    for row in out["by_domain"]:
        assert row["correlation"]["r"] is None and row["n"] == 1
        assert row["correlation"]["reason"] == (
            "needs 3 or more personas with both levels (n = 1)")
        assert row["mean_difference"]["n"] == 1
    assert out["pooled"]["correlation"]["reason"] == (
        "needs 3 or more (persona, domain) pairs with both levels (n = 2)")
    assert out["by_domain"][1]["mean_difference"]["value"] == -1.0


def test_constant_declared_or_measured_levels_have_no_r_and_say_why() -> None:
    flat = [PersonaLevels(k, k, {"E": 3.0, "O": float(i + 1)}, {"E": mv(i + 1.0), "O": mv(3.0)})
            for i, k in enumerate("abcd")]
    out = declared_vs_measured(flat, E_O)
    assert out is not None
    e, o = out["by_domain"]
    assert e["correlation"]["r"] is None and e["n"] == 4
    assert e["correlation"]["reason"] == "the declared levels do not vary (all 3)"
    assert o["correlation"]["reason"] == "the measured levels do not vary (all 3)"
    # The differences are still there: declared 3 against 1, 2, 3, 4.
    assert e["mean_difference"]["value"] == pytest.approx(-0.5)
    assert e["mean_abs_difference"]["value"] == pytest.approx(1.0)


def test_missing_traits_and_unasked_domains_are_none_never_a_crash() -> None:
    people = [
        PersonaLevels("a", "Ann", {"E": 2.0}, {"E": mv(2.0)}),          # O not declared
        PersonaLevels("b", "Bo", {"E": 4.0, "O": 3.0}, {"E": mv(4.0)}),  # O not asked
        PersonaLevels("c", "Cy", {"O": 1.0}, {}),                        # nothing measured
    ]
    out = declared_vs_measured(people, E_O)
    assert out is not None and out["without_traits"] == []
    ann, bo, cy = (p["domains"] for p in out["personas"])
    assert ann["O"] == {"declared": None, "measured": None, "difference": None}
    assert bo["O"] == {"declared": 3.0, "measured": None, "difference": None}
    assert cy["E"]["measured"] is None and cy["O"]["difference"] is None
    e, o = out["by_domain"]
    assert e["n"] == 2 and e["correlation"]["r"] is None
    assert o["n"] == 0 and o["correlation"]["reason"] == (
        "no personas with both a declared and a measured level")
    assert o["mean_difference"] == {"value": None, "ci_low": None, "ci_high": None, "n": 0}


def test_no_declared_traits_means_no_section() -> None:
    assert declared_vs_measured([PersonaLevels("a", "Ann", {}, {"E": mv(3)})], E_O) is None
    assert declared_vs_measured([], E_O) is None
    # Declared only for domains the instrument does not have: nothing to compare either.
    assert declared_vs_measured([PersonaLevels("a", "Ann", {"C": 4.0})], E_O) is None


def test_declared_levels_map_trait_names_to_domains_and_scales() -> None:
    traits = {"openness": 3.0, "conscientiousness": 4.5, "extraversion": None,
              "agreeableness": 1.0, "neuroticism": 5.0}
    assert declared_levels(traits) == {"O": 3.0, "C": 4.5, "A": 1.0, "N": 5.0}
    assert declared_levels(traits, low=1, high=7) == {"O": 4.0, "C": 6.25, "A": 1.0,
                                                      "N": 7.0}
    assert declared_levels({}) == {}
