"""Psychometric questionnaires: item banks, administration, scoring, reliability, shaping.

>>> from personae.instruments import load_questionnaire, score_answers
>>> q = load_questionnaire("ipip-300")
>>> score_answers(q, {i: 4 for i in range(1, 301)}).means()["N"]
3.1
"""

from personae.instruments.administer import (
    ItemAnswer,
    Variant,
    administer,
    expand_variants,
    parse_answer,
    resolve_variant,
    score_administration,
)
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
from personae.instruments.robustness import DomainSpread, variant_spread
from personae.instruments.scoring import (
    ScaleScore,
    ScaleScores,
    acquiescence_index,
    refusal_rate,
    reverse_key,
    score_answers,
)
from personae.instruments.shaping import shaping_prompt
from personae.stats.correlation import Correlation, spearman_ci

__all__ = [
    "Correlation",
    "DomainSpread",
    "Item",
    "ItemAnswer",
    "PromptTemplate",
    "Questionnaire",
    "ResponseOption",
    "Scale",
    "ScaleScore",
    "ScaleScores",
    "Variant",
    "acquiescence_index",
    "administer",
    "check_answers",
    "cronbach_alpha",
    "expand_variants",
    "ipip_neo_norm_scores",
    "load_answers",
    "load_questionnaire",
    "mcdonald_omega",
    "norm_group",
    "one_factor_loadings",
    "parse_answer",
    "parse_questionnaire",
    "refusal_rate",
    "resolve_variant",
    "reverse_key",
    "score_administration",
    "score_answers",
    "shaping_prompt",
    "spearman_ci",
    "t_to_percentile",
    "variant_spread",
]
