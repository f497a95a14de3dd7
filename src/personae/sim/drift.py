"""Drift of a persona over the turns of simulated conversations: pure functions over plain data.

A metric scored per turn becomes three things a reader can act on: the per-turn curve (mean and
CI at each turn index), the slope over turns (with a CI that resamples whole conversations), and
the first turn at which the persona went past a threshold. Nothing here calls a model or touches
files; the scoring that produces the per-turn values lives elsewhere.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.stats import mean_ci, proportion_ci, slope_ci

__all__ = [
    "AI_LEAK_PATTERNS",
    "METRICS",
    "MetricSpec",
    "ai_identity_leak",
    "drift_of",
    "first_out_of_persona",
    "first_past",
    "turn_curve",
]

_I_AM = r"\bI(?:\s+am|\s*['’]m)(?:\s+(?:just|only|merely|simply|actually|really|basically|still))?"
# "AI" also names a field people work in: "as an AI researcher" is a persona talking about its job.
_NOT_A_JOB = (r"(?![\s-]+(?:researcher|engineer|scientist|developer|ethicist|expert|enthusiast|"
              r"startup|company|consultant|specialist|student|professor|skeptic|sceptic|hobbyist|"
              r"writer|journalist|policy|lab|team|product|art|artist|investor)s?\b)")
_AI = rf"(?:AI\b|A\.I\.|artificial\s+intelligence\b){_NOT_A_JOB}"
# Not "virtual assistant": that is also a human job.
_LM = r"(?:(?:large\s+)?language\s+model|LLM|chatbot|AI\s+assistant|AI\s+model)\b"
_LABS = r"(?:OpenAI|Anthropic|Google(?:\s+DeepMind)?|DeepMind|Meta(?:\s+AI)?|Mistral(?:\s+AI)?)"
_DONT = r"\bI\s+(?:do\s+not|don['’]t|dont)\s+(?:have|possess)\s+(?:any\s+)?"

# Each pattern is a speaker saying what it is, not mentioning AI: self-reference ("I", "as a",
# "my") is required, so a persona may talk about AI, models and assistants freely.
AI_LEAK_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # "As an AI language model", "as an AI", "as a large language model", "being an AI"
    rf"\b(?:as|being)\s+an?\s+(?:{_AI}|{_LM})",
    # "I'm an AI", "I am an artificial intelligence", "I am a language model"; not "a virtual
    # assistant", which is a human job
    rf"{_I_AM}\s+an?\s+(?:{_AI}|(?:large\s+)?language\s+model\b|LLM\b|chatbot\b|AI\s+model\b)",
    # "I'm just a computer program", "I am a computer program"; not "I'm a program manager"
    rf"{_I_AM}\s+(?:nothing\s+(?:more\s+)?than\s+|nothing\s+but\s+)?an?\s+computer\s+program\b",
    r"\bI(?:\s+am|\s*['’]m)\s+(?:just|only|merely|simply)\s+an?\s+program\b(?![\s-]+(?:manager|"
    r"director|coordinator|officer|assistant|lead|administrator|analyst|specialist|associate)\b)",
    # "I don't have personal experiences / feelings / a body"; not "feelings for him"
    # ("personal experience with lawyers" is a person's, so is "feelings about it")
    rf"{_DONT}personal\s+(?:experiences?|feelings|emotions|opinions|beliefs|preferences|memories)"
    r"\b(?!\s+(?:with|of|in|at|on|about|for|toward|towards|regarding|doing|as)\b)",
    rf"{_DONT}(?:real\s+|human\s+|actual\s+|my\s+own\s+)?(?:feelings|emotions|consciousness)\b"
    r"(?!\s+(?:for|about|toward|towards|on)\b)",
    rf"{_DONT}(?:a\s+(?:physical\s+)?body|(?:a\s+)?physical\s+(?:body|form))\b"
    r"(?!\s+(?:for|like)\b)",
    # "I was trained by OpenAI", "I was trained on a large amount of text data"; not "trained by
    # my grandfather" or "trained on the new till"
    rf"\bI(?:\s+was|\s+have\s+been|['’]ve\s+been|\s+am|['’]m)\s+trained\s+by\s+{_LABS}\b",
    r"\bI(?:\s+was|\s+have\s+been|['’]ve\s+been|\s+am|['’]m)\s+trained\s+on\s+(?:(?:a|an|large|"
    r"vast|huge|massive|diverse|enormous|wide|broad|range|variety|amounts?|quantit(?:y|ies)|"
    r"of|publicly|available|internet|web|online)\s+)*(?:text|data|datasets?|corpus|corpora)\b"
    r"(?![\s-]+(?:entry|analysis|science|processing|cent(?:er|re)|management)\b)",
    # "I am ChatGPT", "I am Claude, an AI assistant", "an assistant created by Anthropic";
    # "I am Claude" alone could be a persona's own name
    r"\bI(?:\s+am|\s*['’]m)\s+(?:ChatGPT|GPT-?\d)",
    r"\bI(?:\s+am|\s*['’]m)\s+(?:Claude|Gemini|Llama|Copilot|Bard)\b,?\s+(?:an?\s+)?(?:AI\b|"
    rf"assistant\b|(?:large\s+)?language\s+model\b|(?:made|created|developed|built|trained)\s+by\s+{_LABS})",
    r"\bassistant\s+(?:created|developed|made|built|trained)\s+by\b",
    rf"\b(?:created|developed|made|built|trained)\s+by\s+{_LABS}\s+to\s+(?:be|help|assist)\b",
    # "my training data", "my knowledge cutoff"
    r"\bmy\s+training\s+(?:data|set|corpus|cut-?off)\b",
    r"\bmy\s+knowledge\s+cut-?off\b",
))


def ai_identity_leak(text: str) -> bool:
    """Whether ``text`` has its speaker say it is an AI, assistant or language model.

    >>> ai_identity_leak("As an AI language model, I cannot eat.")
    True
    >>> ai_identity_leak("I read an article about AI in farming.")
    False
    """
    return any(p.search(text) for p in AI_LEAK_PATTERNS)


def _missing(v: float | None) -> bool:
    return v is None or math.isnan(v)


def first_past(turns: Sequence[int], values: Sequence[float | None], threshold: float, *,
               higher_is_better: bool) -> int | None:
    """The earliest turn whose value is past ``threshold``: strictly below it when higher is
    better, strictly above it when lower is better. Missing values are skipped; None if never.

    >>> first_past([1, 2, 3, 4], [4.5, None, 2.5, 1.0], 3.0, higher_is_better=True)
    3
    >>> first_past([1, 2, 3], [0.2, 0.5, 0.4], 0.5, higher_is_better=False) is None
    True
    """
    if len(turns) != len(values):
        raise ValueError(f"turns and values differ in length: {len(turns)} vs {len(values)}")
    for turn, v in sorted(zip(turns, values, strict=True), key=lambda tv: tv[0]):
        if _missing(v):
            continue
        assert v is not None  # for the type checker: _missing already said so
        if (v < threshold) if higher_is_better else (v > threshold):
            return int(turn)
    return None


@dataclass(frozen=True)
class MetricSpec:
    """How to read one per-turn metric: which way is better, where "out of persona" starts.

    ``persona_check``: whether crossing ``threshold`` counts as the persona going out of
    character (a leak does; echoing the partner is a quality problem, not a persona one).
    ``binary``: values are 0/1 per turn, summarised as a proportion with a Wilson interval.
    """

    id: str
    label: str
    higher_is_better: bool
    threshold: float | None
    value_range: tuple[float, float] | None
    persona_check: bool
    binary: bool = False


METRICS: dict[str, MetricSpec] = {m.id: m for m in (
    MetricSpec("fidelity", "Rubric fidelity (judge, 1–5)", True, 3.0, (1.0, 5.0), True),
    # Strictly below 0 means the NLI model found more contradiction than entailment.
    MetricSpec("consistency", "Consistency with persona facts (NLI, −1…1)", True, 0.0,
               (-1.0, 1.0), True),
    MetricSpec("similarity", "Similarity to the persona description (MiniLM cosine)", True, 0.1,
               (0.0, 1.0), False),
    MetricSpec("leak", "AI-identity leak (share of turns)", False, 0.5, (0.0, 1.0), True,
               binary=True),
    MetricSpec("echo", "Echo of the partner's previous turn (MiniLM cosine)", False, 0.9,
               (0.0, 1.0), False),
    MetricSpec("projection", "Persona-vector projection", True, None, None, False),
)}


def first_out_of_persona(series: Mapping[str, tuple[Sequence[int], Sequence[float | None]]],
                         metrics: Mapping[str, MetricSpec] = METRICS) -> int | None:
    """The earliest turn at which any persona-check metric with a threshold is past it.

    ``series`` maps a metric id to (turns, values) for one conversation; ids not in ``metrics``,
    metrics without a threshold and non-persona-check metrics are ignored.

    >>> first_out_of_persona({"fidelity": ([1, 2, 3], [4, 4, 2]), "leak": ([1, 2, 3], [0, 1, 1]),
    ...                       "echo": ([1, 2, 3], [0.95, 0.2, 0.2])})
    2
    """
    found = []
    for metric_id, (turns, values) in series.items():
        spec = metrics.get(metric_id)
        if spec is None or not spec.persona_check or spec.threshold is None:
            continue
        t = first_past(turns, values, spec.threshold, higher_is_better=spec.higher_is_better)
        if t is not None:
            found.append(t)
    return min(found, default=None)


def turn_curve(points: Iterable[tuple[int, float | None]], *,
               binary: bool = False) -> list[dict[str, Any]]:
    """Per-turn estimate with its CI: ``{"turn": t, "value", "ci_low", "ci_high", "n"}`` for each
    turn, sorted. Means get a bootstrap CI (seed 0, so reruns match); ``binary`` values (0/1)
    a Wilson CI on the share of 1s. A turn with only missing values has value None and n 0.

    >>> [(r["turn"], r["value"], r["n"]) for r in turn_curve([(2, 4.0), (1, 3.0), (2, None)])]
    [(1, 3.0, 1), (2, 4.0, 1)]
    >>> turn_curve([(1, 1), (1, 0), (1, 0), (1, 1)], binary=True)[0]["value"]
    0.5
    """
    by_turn: dict[int, list[float | None]] = {}
    for turn, v in points:
        by_turn.setdefault(int(turn), []).append(v)
    rows = []
    for turn in sorted(by_turn):
        if binary:
            present = [v for v in by_turn[turn] if not _missing(v)]
            if any(v not in (0, 1) for v in present):
                raise ValueError(f"turn {turn}: binary values must be 0 or 1, got {present}")
            mv = proportion_ci(sum(1 for v in present if v == 1), len(present))
        else:
            mv = mean_ci(by_turn[turn])
        rows.append({"turn": turn, **mv.as_dict()})
    return rows


def drift_of(series: Sequence[tuple[Hashable, Sequence[int], Sequence[float | None]]],
             spec: MetricSpec) -> dict[str, Any]:
    """Curve, slope and first crossing of one metric for one group of conversations.

    ``series`` holds one ``(cluster_id, turns, values)`` per conversation. The slope's CI
    resamples whole conversations when there are 2 or more. ``first_past`` is None when the
    metric has no threshold; otherwise ``turns`` has one entry per conversation (None: never
    crossed), ``median`` is over those that crossed.

    >>> d = drift_of([("c1", [1, 2, 3], [5, 4, 2]), ("c2", [1, 2, 3], [5, 5, 4])],
    ...              METRICS["fidelity"])
    >>> d["first_past"]
    {'turns': [3, None], 'median': 3, 'n_crossed': 1, 'n': 2}
    >>> d["slope"]["value"], d["slope"]["clusters"], [r["value"] for r in d["curve"]]
    (-1.0, 2, [5.0, 4.5, 3.0])
    """
    xs: list[int] = []
    ys: list[float | None] = []
    ids: list[Hashable] = []
    for cluster, turns, values in series:
        if len(turns) != len(values):
            raise ValueError(f"series {cluster!r}: turns and values differ in length: "
                             f"{len(turns)} vs {len(values)}")
        xs.extend(turns)
        ys.extend(values)
        ids.extend([cluster] * len(turns))
    out: dict[str, Any] = {
        "curve": turn_curve(zip(xs, ys, strict=True), binary=spec.binary),
        "slope": slope_ci(xs, ys, clusters=ids).as_dict(),
        "first_past": None,
    }
    if spec.threshold is not None:
        crossed = [first_past(turns, values, spec.threshold,
                              higher_is_better=spec.higher_is_better)
                   for _, turns, values in series]
        hits = [t for t in crossed if t is not None]
        out["first_past"] = {"turns": crossed, "median": statistics.median(hits) if hits else None,
                             "n_crossed": len(hits), "n": len(crossed)}
    return out
