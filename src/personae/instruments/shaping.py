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

from collections.abc import Sequence

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


