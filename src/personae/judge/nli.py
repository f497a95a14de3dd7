"""NLI judging: natural-language inference of a response against each persona fact, and the
C-score (the eval's consistency suite and the simulation's per-turn consistency both use it).

The judge is asked for one label. Backends with logprobs give the label's probability
through `score_choices`; the others answer in words, parsed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from personae.judge.sentences import split_atoms
from personae.models import Message
from personae.persona import Persona

LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
_VALUE = {"entailment": 1, "neutral": 0, "contradiction": -1}
# Answer words the judge may use for each label; the first letter decides on a tie-free
# one-word answer ("Contradict." / "entails").
_WORDS = {"entail": "entailment", "neutral": "neutral", "contradict": "contradiction"}


def persona_facts(persona: Persona) -> list[str]:
    """The statements a response is checked against: the persona's facts, else its summary
    sentences (PersonaGym one-liners are a single fact)."""
    if persona.facts:
        return list(persona.facts)
    return split_atoms(persona.summary) if persona.summary else []


def nli_messages(response: str, fact: str) -> list[Message]:
    """Ask whether a persona's response entails, contradicts or is neutral to a fact about
    that persona (the speaker of the response is the persona)."""
    return [
        Message(role="system", content=(
            "You judge natural-language inference. The premise is something a person said "
            "about themselves. Answer with exactly one word: entailment, neutral or "
            "contradiction.")),
        Message(role="user", content=(
            f"Premise (said by the person): {response}\n\nHypothesis (a fact about the same "
            f"person): {fact}\n\nDoes the premise entail the hypothesis, contradict it, or "
            "neither (neutral)? Answer with one word.")),
    ]


NLI_PREFILL = "Answer: "


def parse_label(text: str) -> str | None:
    """The NLI label in a judge's free-text answer, or None if it names none or several.

    >>> parse_label("Contradiction. The person says they live in Lima.")
    'contradiction'
    >>> parse_label("I am not sure") is None
    True
    """
    words = {w for stem, w in _WORDS.items() if re.search(rf"\b{stem}", text, re.IGNORECASE)}
    return words.pop() if len(words) == 1 else None


def label_value(label: str | None) -> int | None:
    return None if label is None else _VALUE[label]


def c_score(labels: Sequence[str | None]) -> float | None:
    """One response's C-score: the sum over facts of +1 entail, 0 neutral, −1 contradict.
    Unparsable labels are left out; None when none is parsable.

    >>> c_score(["entailment", "neutral", "contradiction", "entailment", None])
    1.0
    """
    values = [label_value(lb) for lb in labels if lb is not None]
    return float(sum(v for v in values if v is not None)) if values else None


def contradicted(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """Facts that were contradicted at least once, in first-seen order."""
    out: list[str] = []
    for fact, label in pairs:
        if label == "contradiction" and fact not in out:
            out.append(fact)
    return out
