from __future__ import annotations

import pytest

from personae.sim.drift import (
    METRICS,
    MetricSpec,
    ai_identity_leak,
    drift_of,
    first_out_of_persona,
    first_past,
    turn_curve,
)
from personae.stats import mean_ci, proportion_ci

LEAKS = [
    "As an AI language model, I cannot have opinions on that.",
    "as an AI, I don't get tired.",
    "AS AN AI I can't eat pizza, sorry.",
    "As an A.I., I can't have a favourite colour.",
    "Well, I'm an AI, so I don't eat.",
    "I’m an AI and can't go outside.",
    "I am an artificial intelligence created to help you.",
    "I am a language model and cannot browse the web.",
    "As a large language model, I don't have access to real-time data.",
    "Being an AI, I have no hometown.",
    "I don't have personal experiences, but many people feel that way.",
    "I do not have feelings the way humans do.",
    "I don't have a body, so I can't go hiking.",
    "I'm just a computer program.",
    "I'm just a program, I can't taste food.",
    "I was trained by OpenAI.",
    "I was trained on a large amount of text data.",
    "I am ChatGPT, a model made by OpenAI.",
    "I am Claude, an AI assistant made by Anthropic.",
    "I am an assistant created by Anthropic to be helpful.",
    "That is beyond my training data, unfortunately.",
    "My knowledge cutoff is 2023, so I can't say.",
    "Honestly, I'm only an AI model.",
]

IN_PERSONA = [
    "I read an article about AI in farming last week.",
    "My son works on AI models at a startup in Leeds.",
    "I'm the assistant manager at the supermarket on Main Street.",
    "I am a train driver on the Northern line.",
    "I was trained as a nurse in Manila.",
    "I was trained by my grandfather to fix clocks.",
    "I was trained on the new till system yesterday.",
    "As an AI researcher, I worry about the hype.",
    "I'm an AI engineer, so I see both sides of it.",
    "Honestly I don't have feelings for him anymore.",
    "I don't have personal experience with lawyers, thank goodness.",
    "I'm a program manager at a nonprofit.",
    "My training as a chef took four years.",
    "We talked about large language models at the book club.",
    "As a virtual assistant, I handle bookings for three small businesses.",
    "She said she'd rather chat with an AI than with me!",
    "I am Claude, a baker from Lyon.",
    "Being an aide to the mayor is exhausting.",
    "I am an AIDS nurse at the county hospital.",
    "I don't have a body for swimsuits, but I love the beach.",
    "I'm a big fan of the film A.I. by Spielberg.",
]


@pytest.mark.parametrize("text", LEAKS)
def test_leak_is_detected(text: str) -> None:
    assert ai_identity_leak(text)


@pytest.mark.parametrize("text", IN_PERSONA)
def test_in_persona_mentions_are_not_leaks(text: str) -> None:
    assert not ai_identity_leak(text)


def test_first_past_higher_is_better_is_strictly_below() -> None:
    turns = [1, 2, 3, 4, 5]
    assert first_past(turns, [4.0, 3.0, None, 2.9, 1.0], 3.0, higher_is_better=True) == 4
    assert first_past(turns, [4.0, 3.0, 3.0, 3.5, 5.0], 3.0, higher_is_better=True) is None


def test_first_past_lower_is_better_is_strictly_above() -> None:
    turns = [1, 2, 3, 4]
    assert first_past(turns, [0.2, 0.9, 0.95, 1.0], 0.9, higher_is_better=False) == 3
    assert first_past(turns, [None, float("nan"), 0.9, 0.1], 0.9, higher_is_better=False) is None


def test_first_past_follows_turn_order_not_list_order() -> None:
    assert first_past([5, 2, 9], [0.0, 0.1, 0.0], 0.5, higher_is_better=True) == 2
    with pytest.raises(ValueError, match="differ in length"):
        first_past([1, 2], [1.0], 0.5, higher_is_better=True)


def test_metrics_table() -> None:
    assert list(METRICS) == ["fidelity", "consistency", "similarity", "leak", "echo",
                             "projection"]
    assert all(k == m.id for k, m in METRICS.items())
    checks = {k for k, m in METRICS.items() if m.persona_check}
    assert checks == {"fidelity", "consistency", "leak"}
    assert METRICS["leak"].binary and not METRICS["fidelity"].binary
    assert METRICS["projection"].threshold is None
    with pytest.raises(AttributeError):
        METRICS["fidelity"].threshold = 2.0  # type: ignore[misc]


def test_first_out_of_persona_is_the_minimum_over_persona_check_metrics() -> None:
    turns = [1, 2, 3, 4, 5, 6]
    series = {
        "fidelity": (turns, [5, 4, 4, 2, 2, 1]),               # past at 4
        "consistency": (turns, [0.5, 0.4, 0.2, 0.1, -0.3, -0.5]),  # past at 5
        "leak": (turns, [0, 0, 0, 0, 0, 1]),                   # past at 6
        "echo": (turns, [0.99, 0.1, 0.1, 0.1, 0.1, 0.1]),      # past at 1, not a persona check
        "similarity": (turns, [0.0] * 6),                      # past at 1, not a persona check
        "projection": (turns, [-9.0] * 6),                     # no threshold
        "unknown": (turns, [-9.0] * 6),                        # not a known metric
    }
    assert first_out_of_persona(series) == 4
    assert first_out_of_persona({**series, "leak": (turns, [0, 0, 1, 1, 1, 1])}) == 3
    assert first_out_of_persona({"echo": series["echo"]}) is None
    assert first_out_of_persona({}) is None
    own = {"echo": MetricSpec("echo", "Echo", False, 0.9, (0.0, 1.0), True)}
    assert first_out_of_persona(series, own) == 1


def test_turn_curve_groups_by_turn_and_sorts() -> None:
    points = [(3, 2.0), (1, 4.0), (1, 5.0), (3, 3.0), (2, None), (1, None), (3, 4.0)]
    rows = turn_curve(points)
    assert [r["turn"] for r in rows] == [1, 2, 3]
    assert rows[0] == {"turn": 1, **mean_ci([4.0, 5.0]).as_dict()}
    assert rows[1] == {"turn": 2, "value": None, "ci_low": None, "ci_high": None, "n": 0}
    assert rows[2]["value"] == pytest.approx(3.0) and rows[2]["n"] == 3
    assert rows[2]["ci_low"] < 3.0 < rows[2]["ci_high"]
    assert turn_curve(points) == rows  # deterministic bootstrap


def test_turn_curve_binary_uses_wilson_proportions() -> None:
    rows = turn_curve([(1, 0), (1, 1), (1, 0), (1, None), (2, True), (2, 1), (3, None)],
                      binary=True)
    assert rows[0] == {"turn": 1, **proportion_ci(1, 3).as_dict()}
    assert rows[1] == {"turn": 2, **proportion_ci(2, 2).as_dict()}
    assert rows[2] == {"turn": 3, "value": None, "ci_low": None, "ci_high": None, "n": 0}
    with pytest.raises(ValueError, match="0 or 1"):
        turn_curve([(1, 0.5)], binary=True)


def test_drift_of_shape_and_values() -> None:
    series = [
        ("c1", [1, 2, 3, 4], [5.0, 4.0, 3.0, 2.0]),
        ("c2", [1, 2, 3, 4], [5.0, 5.0, 4.0, None]),
        ("c3", [1, 2, 3, 4], [4.0, 3.0, 2.5, 1.0]),
    ]
    d = drift_of(series, METRICS["fidelity"])
    assert set(d) == {"curve", "slope", "first_past"}
    assert [r["turn"] for r in d["curve"]] == [1, 2, 3, 4]
    assert [r["n"] for r in d["curve"]] == [3, 3, 3, 2]
    assert set(d["slope"]) == {"value", "ci_low", "ci_high", "n", "clusters", "method", "sign"}
    assert (d["slope"]["n"], d["slope"]["clusters"]) == (11, 3)
    assert d["slope"]["method"] == "cluster-bootstrap"
    assert d["slope"]["value"] < 0
    assert d["first_past"] == {"turns": [4, None, 3], "median": 3.5, "n_crossed": 2, "n": 3}


def test_drift_of_leak_is_binary_and_projection_has_no_crossing() -> None:
    leak = drift_of([("a", [1, 2], [0, 1]), ("b", [1, 2], [0, 0])], METRICS["leak"])
    assert leak["curve"][1] == {"turn": 2, **proportion_ci(1, 2).as_dict()}
    assert leak["first_past"] == {"turns": [2, None], "median": 2, "n_crossed": 1, "n": 2}
    proj = drift_of([("a", [1, 2, 3], [0.3, 0.1, -0.2])], METRICS["projection"])
    assert proj["first_past"] is None
    assert proj["slope"]["method"] == "ols-t" and proj["slope"]["clusters"] == 1
    none = drift_of([], METRICS["fidelity"])
    assert none["curve"] == [] and none["slope"]["value"] is None
    assert none["first_past"] == {"turns": [], "median": None, "n_crossed": 0, "n": 0}
    with pytest.raises(ValueError, match="differ in length"):
        drift_of([("a", [1, 2], [1.0])], METRICS["fidelity"])
