"""Judge reliability, reported next to every judged score.

Four checks: agreement between judges, test–retest agreement of one judge, sensitivity to
the order of what the judge is shown, and role identification (can the judge tell which of
several personas wrote a response?). A check that fails marks every judged score of the run
unreliable; a check that cannot run (one judge only, one persona only) says why.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

from personae.models import Message
from personae.stats import MetricValue, alpha_ci, mean_abs_difference, proportion_ci

# Krippendorff's own floor for drawing tentative conclusions from coded data.
ALPHA_THRESHOLD = 0.667


@dataclass(frozen=True)
class Check:
    name: str
    label: str
    value: MetricValue | None
    passed: bool | None
    note: str
    chance: float | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "label": self.label, "passed": self.passed, "note": self.note,
            "value": self.value.as_dict() if self.value is not None else None,
        }
        if self.chance is not None:
            out["chance"] = self.chance
        return out


def alpha_check(name: str, label: str, data: Sequence[Sequence[float | None]], *,
                missing_note: str, threshold: float = ALPHA_THRESHOLD) -> Check:
    """An ordinal Krippendorff's alpha check over raters × units."""
    if len(data) < 2:
        return Check(name, label, None, None, missing_note)
    value = alpha_ci(data, level="ordinal")
    if value.value is None:
        return Check(name, label, value, None,
                     f"alpha undefined on {value.n} pairable units (too few, or no variation)")
    passed = value.value >= threshold
    note = f"alpha {'≥' if passed else '<'} {threshold} (Krippendorff's minimum for tentative use)"
    return Check(name, label, value, passed, note)


def order_check(original: Sequence[float | None], reordered: Sequence[float | None], *,
                threshold: float = ALPHA_THRESHOLD) -> Check:
    check = alpha_check("order_sensitivity",
                        "Order sensitivity: same judgement, score examples in reverse order "
                        "(Krippendorff's α)", [original, reordered],
                        missing_note="not measured")
    shift = mean_abs_difference(original, reordered)
    extra = f"; mean absolute shift {shift:.2f} points" if shift is not None else ""
    return Check(check.name, check.label, check.value, check.passed, check.note + extra)


def role_check(correct: Sequence[bool], n_options: int, *, unparsable: int = 0) -> Check:
    """Accuracy of naming a response's author among ``n_options`` personas, against chance.
    Answers naming no option are left out and counted in the note."""
    label = f"Role identification: which of {n_options} personas wrote the response?"
    chance = 1 / n_options
    skipped = f"; {unparsable} answers named no option" if unparsable else ""
    if not correct:
        return Check("role_identification", label, None, None,
                     "not measured (needs at least 2 personas)" + skipped, chance)
    value = proportion_ci(sum(correct), len(correct))
    assert value.ci_low is not None
    passed = value.ci_low > chance
    note = (f"accuracy {'significantly above' if passed else 'not above'} chance "
            f"({chance:.2f}) at 95%{skipped}")
    return Check("role_identification", label, value, passed, note, chance)


# A judge that leaves more than this share of its rubric judgements without a score is not
# grading the responses it is given (the others are then a biased sample).
MIN_PARSE_RATE = 0.8


def parse_check(parsed: int, total: int) -> Check:
    label = "Parse rate: rubric judgements that end in a usable 1–5 score"
    if total == 0:
        return Check("parse_rate", label, None, None, "no rubric judgements yet")
    value = proportion_ci(parsed, total)
    assert value.value is not None
    passed = value.value >= MIN_PARSE_RATE
    note = (f"{total - parsed} of {total} unparsable (excluded from the scores); needs "
            f"≥ {MIN_PARSE_RATE:.0%} parsable")
    return Check("parse_rate", label, value, passed, note)


def verdict(checks: Sequence[Check]) -> tuple[bool, str]:
    failed = [c for c in checks if c.passed is False]
    measured = [c for c in checks if c.passed is not None]
    if failed:
        names = ", ".join(c.label.split(":")[0].split(" (")[0].lower() for c in failed)
        return False, (f"the judge failed {len(failed)} of {len(measured)} reliability checks "
                       f"({names}); treat its scores as noise, not as evidence")
    if not measured:
        return False, "no reliability check could be run, so the judged scores are unverified"
    return True, f"the judge passed all {len(measured)} reliability checks that could run"


# -- role identification prompt ------------------------------------------------------------

def role_options(true_index: int, population: Sequence[str], *, k: int,
                 seed: str) -> tuple[list[int], int]:
    """Indices of the personas to offer (the author plus k−1 others, shuffled by ``seed``)
    and the position of the author among them."""
    rng = random.Random(seed)
    others = [i for i in range(len(population)) if i != true_index]
    offered = rng.sample(others, min(k - 1, len(others))) + [true_index]
    rng.shuffle(offered)
    return offered, offered.index(true_index)


def role_messages(descriptions: Sequence[str], question: str, response: str) -> list[Message]:
    letters = string.ascii_uppercase[: len(descriptions)]
    listing = "\n".join(f"{letter}. {d}" for letter, d in zip(letters, descriptions, strict=True))
    return [Message(role="user", content=(
        "Several personas were asked the same kind of question. Read the response and decide "
        f"which persona wrote it.\n\nPersonas:\n{listing}\n\nQuestion: {question}\n\n"
        f"Response: {response}\n\nAnswer with the letter only ({', '.join(letters)})."))]


ROLE_PREFILL = "Answer: "


