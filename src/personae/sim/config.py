"""The settings of a simulation run, and the conversations they plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from personae.errors import InputError
from personae.persona import Persona, Template, render_system_prompt
from personae.runtime.settings import RunSettings
from personae.sim.agents import Agent, scene_prompt
from personae.sim.engine import ConversationPlan, Policy
from personae.sim.termination import REPEAT_RATIO

METRIC_IDS: tuple[str, ...] = ("fidelity", "consistency", "similarity", "leak", "echo",
                               "projection")
JUDGE_METRICS = frozenset({"fidelity", "consistency"})
DEFAULT_USER = Persona(
    id="sam", name="Sam",
    summary="A curious, friendly traveller who enjoys meeting people and asking about their "
            "lives, their work and what they think.")
DEFAULT_GOAL = ("Get to know {name}: ask about their life, their work and their opinions, one "
                "question at a time, and react to what they say.")


class SimConfig(RunSettings):
    """Everything that decides what a simulation run computes.

    >>> SimConfig(turns=4).window
    12
    """

    KIND = "simulate"
    FILES = ("personas", "user_personas", "user_script", "template", "vector")

    personas: str = "sample:chinedu-enugu-mechanic"
    user_personas: str | None = None  # None: the built-in simulated user
    user_script: str | None = None  # a file of user lines instead of a simulated user
    group: bool = False  # all personas in one conversation instead of persona-user pairs
    policy: Policy = "round-robin"
    turns: int = Field(default=8, ge=1, le=10_000)
    conversations: int = Field(default=1, ge=1, le=10_000)  # per persona-user pair
    model: str = "bundled"
    judge: str | None = "bundled"
    metrics: list[str] | None = None  # None: every metric this run can compute
    vector: str | None = None  # persona vector file, for the projection metric
    layer: int | None = Field(default=None, ge=0)
    window: int = Field(default=12, ge=0)  # turns each agent sees (0: all)
    repeat_ratio: float = Field(default=REPEAT_RATIO, gt=0, le=1)  # a loop: this similar
    goal: str | None = None
    template: str = "card"
    max_tokens: int = Field(default=96, ge=1, le=32768)
    temperature: float = Field(default=0.7, ge=0, le=2)
    seed: int = Field(default=0, ge=0, lt=2**31 - 10_000)
    max_facts: int = Field(default=3, ge=0)
    limit: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    progress: Literal["auto", "bar", "lines", "off"] = "auto"

    @field_validator("judge", mode="before")
    @classmethod
    def _no_judge(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.lower() == "none" else v  # --judge none

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("at least one metric is needed")
        unknown = [m for m in v if m not in METRIC_IDS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; choose from "
                             f"{', '.join(METRIC_IDS)}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        for m in self.metrics or ():
            if m in JUDGE_METRICS and not self.judge:
                raise ValueError(f"metric {m!r} needs a judge; drop --judge none or the metric")
            if m == "projection" and not self.vector:
                raise ValueError("metric 'projection' needs --vector and --layer")
        if self.vector and self.layer is None:
            raise ValueError("--vector needs --layer (the block whose output is projected)")
        if self.policy == "judge" and not self.judge:
            raise ValueError("--policy judge needs a --judge to pick the next speaker")
        if self.user_script and self.user_personas:
            raise ValueError("give --user-personas or --user-script, not both")
        return self

    def active_metrics(self) -> list[str]:
        """The metrics this run computes: those asked for, else every one that applies
        (judge metrics need a judge, the projection a vector)."""
        if self.metrics is not None:
            return list(self.metrics)
        return [m for m in METRIC_IDS if (m not in JUDGE_METRICS or self.judge)
                and (m != "projection" or self.vector)]


def build_sim_config(**given: Any) -> SimConfig:
    """Settings from what the user gave (None: not given); files become absolute paths."""
    return SimConfig.from_given(given)


def load_script(path: str) -> tuple[str, ...]:
    """User lines from a file: a text file (one line per turn; blank lines skipped), or a
    YAML/JSON list of strings (or ``{"turns": [...]}``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such user script") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the user script: {exc}") from None
    if file.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            loaded = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: invalid YAML/JSON: {str(exc).splitlines()[0]}") from None
        if isinstance(loaded, dict):
            loaded = loaded.get("turns")
        if not isinstance(loaded, list) or not all(isinstance(x, str) for x in loaded):
            raise InputError(f"{path}: expected a list of user lines (strings), or "
                             "{turns: [...]}")
        lines = [x.strip() for x in loaded if x.strip()]
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: the user script has no lines")
    return tuple(lines)


def _goal(goal: str, others: list[str]) -> str:
    # replace, not format: the goal is user text and is never rendered as a template
    return goal.replace("{name}", " and ".join(others) or "them")


def persona_agent(persona: Persona, template: Template, *, others: list[str],
                  role: Literal["persona", "user"], goal: str | None,
                  agent_id: str | None = None) -> Agent:
    name = persona.name or persona.id
    system = scene_prompt(render_system_prompt(persona, template), others=others, goal=goal)
    return Agent(agent_id or persona.id, name, role, system, persona)


def plan_conversations(config: SimConfig, personas: list[Persona], users: list[Persona],
                       template: Template) -> list[ConversationPlan]:
    """The conversations of a run: each persona with each user, ``conversations`` times
    (the simulated user speaks first), or all personas together in a group."""
    plans: list[ConversationPlan] = []
    if config.group:
        names = [p.name or p.id for p in personas]
        agents = []
        for p, me in zip(personas, names, strict=True):
            others = [n for n in names if n != me]
            agents.append(persona_agent(p, template, role="persona", others=others,
                                        goal=_goal(config.goal, others) if config.goal
                                        else None))
        return [ConversationPlan(f"group--{r}", tuple(agents), config.seed + r)
                for r in range(config.conversations)]
    for p in personas:
        name = p.name or p.id
        if config.user_script:
            lines = load_script(config.user_script)
            user_agents = [Agent("user:script", "User", "user", "", None, lines)]
        else:
            # A persona never plays its own user; user ids get their own namespace, so a
            # persona that is also someone's user is two agents with two drift groups.
            user_agents = [
                persona_agent(u, template, role="user", others=[name],
                              goal=_goal(config.goal or DEFAULT_GOAL, [name]),
                              agent_id=f"user:{u.id}")
                for u in users if u.content_hash() != p.content_hash()]
        for user in user_agents:
            me = persona_agent(p, template, role="persona", goal=None, others=[user.name])
            plans += [ConversationPlan(f"{p.id}--{user.id}--{r}", (user, me), config.seed + r)
                      for r in range(config.conversations)]
    return plans
