"""Each response of an eval run with the scores the run gave it: what the gate pairs and
training export ranks, computed the way the run's summary computes them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.evals.personagym import question_mean
from personae.judge.nli import c_score

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Scored:
    """A subject response with the scores the run gave it (None: not measured, or no
    parsable judgement)."""

    key: str  # the response record's key in the run store
    response: Record
    fidelity: float | None
    consistency: float | None


def score_responses(responses: Iterable[tuple[str, Record]], judgements: Iterable[Record],
                    nli: Iterable[Record], judges: Sequence[str]) -> list[Scored]:
    """Each response with its fidelity and consistency, as the run's summary computes them:
    fidelity is the mean of ``judges``' main rubric scores (unparsable ones left out), and
    consistency the C-score of the first judge's NLI labels.

    >>> [s.fidelity for s in score_responses(
    ...     [("p|persona|0", {"text": "Hi"})],
    ...     [{"response_key": "p|persona|0", "judge": "j", "variant": "main", "score": 4},
    ...      {"response_key": "p|persona|0", "judge": "j", "variant": "retest1", "score": 1},
    ...      {"response_key": "p|persona|0", "judge": "k", "variant": "main", "score": None}],
    ...     [], judges=["j", "k"])]
    [4.0]
    """
    scores: dict[str, list[float | None]] = defaultdict(list)
    for j in judgements:
        if j["variant"] == "main" and j["judge"] in judges:
            scores[j["response_key"]].append(j["score"])
    labels: dict[str, list[str | None]] = defaultdict(list)
    for r in nli:
        if r["judge"] == judges[0]:
            labels[r["response_key"]].append(r["label"])
    return [Scored(key, rec, question_mean(scores[key]) if key in scores else None,
                   c_score(labels[key]) if key in labels else None)
            for key, rec in responses]
