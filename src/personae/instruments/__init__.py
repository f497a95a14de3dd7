"""Psychometric questionnaires: item banks, scoring, reliability, response styles, norms.

>>> from personae.instruments import load_questionnaire, score_answers
>>> q = load_questionnaire("ipip-300")
>>> score_answers(q, {i: 4 for i in range(1, 301)}).means()["N"]
3.1
"""

from personae.instruments.norms import ipip_neo_norm_scores, norm_group, t_to_percentile
from personae.instruments.questionnaire import (
    Item,
    PromptTemplate,
    Questionnaire,
    ResponseOption,
    Scale,
    check_answers,
    load_answers,
    load_questionnaire,
    parse_questionnaire,
)
from personae.instruments.reliability import cronbach_alpha, mcdonald_omega, one_factor_loadings
from personae.instruments.scoring import (
    ScaleScore,
    ScaleScores,
    acquiescence_index,
    refusal_rate,
    reverse_key,
    score_answers,
)

__all__ = [
    "Item",
    "PromptTemplate",
    "Questionnaire",
    "ResponseOption",
    "Scale",
    "ScaleScore",
    "ScaleScores",
    "acquiescence_index",
    "check_answers",
    "cronbach_alpha",
    "ipip_neo_norm_scores",
    "load_answers",
    "load_questionnaire",
    "mcdonald_omega",
    "norm_group",
    "one_factor_loadings",
    "parse_questionnaire",
    "refusal_rate",
    "reverse_key",
    "score_answers",
    "t_to_percentile",
]
