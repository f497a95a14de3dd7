"""The settings of an evaluation run, and the presets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from personae.errors import InputError
from personae.evals.personagym import TASKS
from personae.runtime.settings import RunSettings

SUITES: tuple[str, ...] = ("fidelity", "consistency", "atomic")
# The headline metrics a quality gate can check, and the suite that measures each.
METRICS: dict[str, str] = {"fidelity": "fidelity", "consistency": "consistency",
                           "acc_atom": "atomic", "ic_atom": "atomic", "rc_atom": "atomic"}
# The persona itself plus the two controls every eval runs on the same probes.
CONDITIONS: tuple[str, ...] = ("persona", "no_persona", "assistant")
ASSISTANT_PROMPT = "You are a helpful assistant."


class EvalConfig(RunSettings):
    """Everything that decides what an eval run computes.

    >>> EvalConfig(suites=["fidelity"]).judges
    ['bundled']
    """

    KIND = "eval"
    FILES = ("personas", "questions")

    personas: str = "personagym"
    model: str = "bundled"
    judges: list[str] = Field(default_factory=lambda: ["bundled"])
    suites: list[str] = Field(default_factory=lambda: list(SUITES))
    questions: str = "auto"  # auto | benchmark-v1 | generate | FILE
    tasks: list[str] = Field(default_factory=lambda: list(TASKS))
    per_task: int = Field(default=2, ge=1, le=100)
    limit: int | None = Field(default=None, ge=1)
    template: str = "card"
    samples: int = Field(default=1, ge=1, le=20)
    seed: int = 0
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=256, ge=1)
    judge_temperature: float = Field(default=0.0, ge=0, le=2)
    judge_max_tokens: int = Field(default=384, ge=1)
    judge_batch: int = Field(default=1, ge=1, le=10)
    reliability_sample: int = Field(default=20, ge=0)
    role_options: int = Field(default=4, ge=2, le=10)
    max_facts: int = Field(default=8, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    progress: Literal["auto", "bar", "lines", "off"] = "auto"

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, v: list[str]) -> list[str]:
        return _known("suite", v, SUITES)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str]) -> list[str]:
        return _known("task", v, TASKS)

    @field_validator("judges")
    @classmethod
    def _some_judge(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one --judge is needed")
        return list(dict.fromkeys(v))


def _known(what: str, given: list[str], allowed: tuple[str, ...]) -> list[str]:
    """``given`` without repeats, if every entry is one of ``allowed`` and there is one."""
    unknown = [x for x in given if x not in allowed]
    if unknown or not given:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or '(none)'}; "
                         f"choose from {', '.join(allowed)}")
    return list(dict.fromkeys(given))


# "quick": the README's first command. Finishes in a few minutes on 2 cores with the bundled
# 135M model as subject and judge; the numbers it prints are a demonstration, not evidence.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"personas": "personagym", "limit": 2, "per_task": 1, "max_tokens": 96,
              "judge_max_tokens": 160, "reliability_sample": 6, "max_facts": 3,
              "suites": ["fidelity", "consistency"]},
    "standard": {"personas": "personagym", "limit": 20, "per_task": 2},
}


def build_config(preset: str | None, **given: Any) -> EvalConfig:
    """A preset's settings overlaid with what the user gave (None means not given)."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        base = dict(PRESETS[preset])
    base.update({k: v for k, v in given.items() if v is not None})
    return EvalConfig.from_given(base)
