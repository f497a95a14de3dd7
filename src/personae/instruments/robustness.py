"""How much a questionnaire's scores move when only the way it is put changes.

The variants of `personae.instruments.administer` (reversed options, paraphrased
instructions, item order) should leave a respondent's domain means where they were. The
spread of the domain means across variants says how far they did not: its range (max − min)
and its standard deviation (sample SD, n − 1), with each variant's mean beside them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict


class DomainSpread(BaseModel):
    """One domain's means across variants and their spread (None with fewer than 2)."""

    model_config = ConfigDict(frozen=True)

    domain: str
    by_variant: dict[str, float | None]
    n: int
    range: float | None
    sd: float | None


def variant_spread(means: Mapping[str, Mapping[str, float | None]]) -> dict[str, DomainSpread]:
    """Spread of domain means across variants: ``means`` is ``{variant: {domain: mean}}``.

    Variants without a mean for a domain (every item unparsable) are shown as None and
    left out of the spread.

    >>> s = variant_spread({"base": {"E": 3.0, "A": 4.0}, "reversed": {"E": 2.0, "A": None},
    ...                     "paraphrase:plain": {"E": 3.5, "A": 4.2}})
    >>> s["E"].range, round(s["E"].sd, 3), s["E"].n
    (1.5, 0.764, 3)
    >>> s["A"].by_variant["reversed"] is None, s["A"].n, round(s["A"].range, 2)
    (True, 2, 0.2)
    """
    domains: list[str] = []
    for per_variant in means.values():
        domains += [d for d in per_variant if d not in domains]
    out: dict[str, DomainSpread] = {}
    for d in domains:
        by_variant = {v: per_variant.get(d) for v, per_variant in means.items()}
        got = [x for x in by_variant.values() if x is not None]
        several = len(got) >= 2
        out[d] = DomainSpread(
            domain=d, by_variant=by_variant, n=len(got),
            range=max(got) - min(got) if several else None,
            sd=statistics.stdev(got) if several else None,
        )
    return out
