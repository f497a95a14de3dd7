"""Surveys: a questionnaire put to personas (or the bare model) as a resumable run, with
domain scores, reliability, robustness across variants, shaping and declared-vs-measured
traits. The questionnaires themselves (items, scoring, administration) are in
`personae.instruments`.
"""

from personae.survey.run import (
    BUNDLED_WARNING,
    SurveyConfig,
    SurveyKind,
    SurveyPlan,
    SurveyResult,
    build_survey_config,
    run_survey,
)

__all__ = ["BUNDLED_WARNING", "SurveyConfig", "SurveyKind", "SurveyPlan", "SurveyResult",
           "build_survey_config", "run_survey"]
