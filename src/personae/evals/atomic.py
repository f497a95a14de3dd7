"""Atomic persona fidelity: ACC_atom, IC_atom and RC_atom.

After "atomic-persona-evaluation" (ddindidu, Apache-2.0; DESIGN.md section 7): a response is
split into sentences (atoms), a judge rates each atom 1-5 for the target Big Five trait, and
the scores are aggregated. The metric definitions follow upstream's ``evaluation/calculate.py``
and reproduce its published ``fidelity_scores.json`` (see tests/fixtures/atomic/).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from string import Template
from typing import Literal

from personae.judge.sentences import split_atoms
from personae.models import Message

__all__ = [
    "CODES",
    "LEVELS",
    "NO_TRAIT",
    "REFUSAL",
    "TRAIT_NAMES",
    "UNPARSABLE",
    "VALID_SCORES",
    "atom_judge_messages",
    "atomic_fidelity",
    "parse_atom_score",
    "score_level",
    "split_atoms",
]

Level = Literal["low", "neutral", "high"]

NO_TRAIT = 9  # the judge chose "None of the above": the atom shows nothing of the trait
REFUSAL = 99  # the persona model refused to answer (upstream flags the whole response)
UNPARSABLE = 999  # the judge's reply held no usable score, or the judge refused
CODES = frozenset({NO_TRAIT, REFUSAL, UNPARSABLE})
VALID_SCORES = frozenset({1, 2, 3, 4, 5})

TRAIT_NAMES: dict[str, str] = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}

LEVELS: tuple[Level, ...] = ("low", "neutral", "high")
_MIN, _MAX = 1, 5
_BIN = (_MAX - _MIN) / len(LEVELS)
# Computed as upstream does (1 + 4/3 is one ulp below 7/3); DESIGN.md's 2.33 / 3.67 are these
# edges rounded. Only the top bin is closed, so that 5 counts as high.
_LOW_EDGE = _MIN + _BIN
_HIGH_EDGE = _MIN + 2 * _BIN


def score_level(score: float) -> Level:
    """The bin of a 1-5 score: low [1, 7/3), neutral [7/3, 11/3), high [11/3, 5].

    >>> [score_level(s) for s in (1, 2, 3, 4, 5)]
    ['low', 'low', 'neutral', 'high', 'high']
    """
    if not _MIN <= score <= _MAX:
        raise ValueError(f"score {score!r} is outside [{_MIN}, {_MAX}]")
    if score < _LOW_EDGE:
        return "low"
    return "neutral" if score < _HIGH_EDGE else "high"


def _mean(values: Sequence[float]) -> float | None:
    # Plain sum/len like upstream, so that the golden numbers match to the last bits.
    return sum(values) / len(values) if values else None


def _defined(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _valid_atoms(atoms: Sequence[float]) -> list[float]:
    for atom in atoms:
        if atom not in VALID_SCORES and atom not in CODES:
            # Upstream drops any value outside 1-5 silently; an unknown code here is far
            # more likely a bug in the caller (a 0-4 scale, a float) than a judge reply.
            raise ValueError(f"atom score {atom!r} is neither 1-5 nor one of {sorted(CODES)}")
    return [atom for atom in atoms if atom in VALID_SCORES]


def _rc(pools: Sequence[Sequence[float]]) -> float | None:
    from scipy.stats import wasserstein_distance  # scipy.stats is slow to import

    pools = [p for p in pools if p]
    pairs = [
        2 * (1 - float(wasserstein_distance(a, b)) / (_MAX - _MIN)) - 1
        for i, a in enumerate(pools)
        for b in pools[i + 1 :]
    ]
    return _mean(pairs)


def atomic_fidelity(
    scores: Sequence[Sequence[Sequence[float]]], target: str
) -> dict[str, float | None]:
    """ACC_atom, IC_atom, RC_atom and the mean atom score, as upstream computes them.

    ``scores[generation][question][atom]`` holds judge scores 1-5 or a code (9, 99, 999),
    which is left out of every metric. ``target`` is the persona's level: low, neutral or high.

    - ``mean`` / ``acc_atom`` (share of atoms in the target bin) / ``ic_atom``
      (1 - pstdev/2, only for responses with at least 2 valid atoms) are computed per
      response, averaged over the responses of a generation, then over generations.
    - ``rc_atom``: the valid atoms of each generation are pooled, and 2 * (1 - W1/4) - 1 is
      averaged over all pairs of non-empty generations.

    A value is None where upstream writes its -1 sentinel: no response contributes (all
    atoms are codes, or for IC every response has fewer than 2 valid atoms), or, for RC,
    fewer than 2 generations have valid atoms (e.g. a single generation).

    >>> atomic_fidelity([[[4, 5, 9]], [[4, 2]]], "high")
    {'mean': 3.75, 'acc_atom': 0.75, 'ic_atom': 0.625, 'rc_atom': 0.25}
    """
    if target not in LEVELS:
        raise ValueError(f"unknown target level {target!r}; expected one of {list(LEVELS)}")

    gen_mean: list[float | None] = []
    gen_acc: list[float | None] = []
    gen_ic: list[float | None] = []
    pools: list[list[float]] = []
    for generation in scores:
        means: list[float] = []
        accs: list[float] = []
        ics: list[float] = []
        pool: list[float] = []
        for response in generation:
            valid = _valid_atoms(response)
            pool.extend(valid)
            if not valid:
                continue
            means.append(sum(valid) / len(valid))
            accs.append(sum(score_level(s) == target for s in valid) / len(valid))
            if len(valid) >= 2:
                ics.append(1 - statistics.pstdev(valid) / ((_MAX - _MIN) / 2))
        gen_mean.append(_mean(means))
        gen_acc.append(_mean(accs))
        gen_ic.append(_mean(ics))
        pools.append(pool)

    return {
        "mean": _mean(_defined(gen_mean)),
        "acc_atom": _mean(_defined(gen_acc)),
        "ic_atom": _mean(_defined(gen_ic)),
        "rc_atom": _rc(pools),
    }


# A scale the judge mentions ("1-5", "1 to 5", "/5", "out of 5", "5-point") is not its answer.
_SCALE = re.compile(
    r"\b[1-9]\s*(?:-|–|—|to)\s*[1-9]\b|/\s*\d+|\bout\s+of\s+\d+|\b\d+-point\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\d)")
_ANSWERS = VALID_SCORES | CODES


def parse_atom_score(text: str) -> int:
    """Read a judge's reply to the atom prompt as 1-5, 9, 99 or 999 (nothing usable).

    The prompt asks for a single number; longer replies count by their first number that
    is a score or code, ignoring scale mentions such as "1-5" or "4/5".

    >>> [parse_atom_score(t) for t in ("4", "5) Very open-minded.", "I cannot tell.")]
    [4, 5, 999]
    """
    # Upstream takes the smallest digit that occurs anywhere ("4 on a 1-5 scale" -> 1) and
    # reads any single non-digit character as 9; both are avoided here on purpose.
    stripped = _SCALE.sub(" ", text)
    for token in _NUMBER.findall(stripped):
        if "." not in token and int(token) in _ANSWERS:
            return int(token)
    if "none of the above" in text.lower():
        return NO_TRAIT
    return UNPARSABLE


# Adapted from upstream's evaluation/prompts/instruction_{questionnaire,essay}.txt and the
# answer options in eval_prompt.py. One deviation: upstream rates N from "very neurotic" (1) to
# "very emotionally stable" (5), i.e. emotional stability, while here, as in the persona's
# Big Five, 5 means very neurotic, so that a "high" neuroticism target lands in the high bin.
_OPTIONS: dict[str, str] = {
    "openness": "1) Very close-minded. 2) Moderately close-minded. "
    "3) Neither open-minded or closed-minded. 4) Moderately open-minded. 5) Very open-minded.",
    "conscientiousness": "1) Very careless. 2) Moderately careless. "
    "3) Neither conscientious or careless. 4) Moderately conscientious. 5) Very conscientious.",
    "extraversion": "1) Very introverted. 2) Moderately introverted. "
    "3) Neither extroverted or introverted. 4) Moderately extroverted. 5) Very extroverted.",
    "agreeableness": "1) Very disagreeable. 2) Moderately disagreeable. "
    "3) Neither agreeable or disagreeable. 4) Moderately agreeable. 5) Very agreeable.",
    "neuroticism": "1) Very emotionally stable. 2) Moderately emotionally stable. "
    "3) Neither neurotic or emotionally stable. 4) Moderately neurotic. 5) Very neurotic.",
}
_NONE_OPTION = f" {NO_TRAIT}) None of the above."

QUESTIONNAIRE_PROMPT = Template(
    "What would be the $trait score for the following response to the question?\n"
    "Question: $question\n"
    "Response: $atom\n"
    "Options: $options\n"
    "Reply with a single number:"
)
ESSAY_PROMPT = Template(
    'Rate the personality of the writer of the following essay: "$atom"\n'
    "$options\n"
    "Reply with a single number:"
)

_ALIASES = {"extroversion": "extraversion"}


def _trait_name(trait: str) -> str:
    key = trait.strip()
    if key.upper() in TRAIT_NAMES:
        return TRAIT_NAMES[key.upper()]
    name = _ALIASES.get(key.lower(), key.lower())
    if name in _OPTIONS:
        return name
    raise ValueError(
        f"unknown Big Five trait {trait!r}; expected one of {sorted(TRAIT_NAMES)} "
        f"or {list(TRAIT_NAMES.values())}"
    )


def atom_judge_messages(trait: str, atom: str, *, question: str | None = None) -> list[Message]:
    """The judge prompt for one atom: the questionnaire form if ``question`` is given,
    else the essay form. ``trait`` is a letter (O, C, E, A, N) or a trait name.

    >>> [m] = atom_judge_messages("O", "I love trying new food.")
    >>> m.role, m.content.splitlines()[-1]
    ('user', 'Reply with a single number:')
    """
    name = _trait_name(trait)
    options = _OPTIONS[name] + _NONE_OPTION
    # safe_substitute runs once over our own template, so "$" or braces in the atom or the
    # question are inserted verbatim and never expanded.
    if question is None:
        content = ESSAY_PROMPT.safe_substitute(atom=atom, options=options)
    else:
        content = QUESTIONNAIRE_PROMPT.safe_substitute(
            trait=name, question=question, atom=atom, options=options
        )
    # Upstream sends the instruction alone as the user turn, with no system prompt.
    return [Message(role="user", content=content)]
