"""Probes: the questions a persona is asked, one task each.

From PersonaGym's static benchmark-v1 (for its 200 personas), from a question file, or
generated for any persona by a judge model (see `personae.evals.engine`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from personae.errors import InputError, describe_validation
from personae.evals.personagym import TASKS, benchmark_questions
from personae.persona import Persona


class Probe(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # "<persona id>|<task slug>-<n>", unique within a run
    persona_id: str
    task: str
    question: str
    source: str  # benchmark-v1 | generated | file:NAME


def task_slug(task: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")


def make_probes(persona: Persona, task: str, questions: list[str], source: str) -> list[Probe]:
    return [Probe(id=f"{persona.id}|{task_slug(task)}-{i}", persona_id=persona.id, task=task,
                  question=q, source=source) for i, q in enumerate(questions, 1)]


def benchmark_probes(persona: Persona, tasks: list[str], per_task: int) -> list[Probe] | None:
    """The persona's benchmark-v1 questions, or None if it is not a benchmark persona."""
    found = benchmark_questions().get((persona.summary or "").strip())
    if found is None:
        return None
    return [p for t in tasks for p in make_probes(persona, t, found[t][:per_task],
                                                  "benchmark-v1")]


class _QuestionFile(RootModel[dict[str, list[str]]]):
    pass


def load_question_file(path: str | Path) -> dict[str, list[str]]:
    """A PersonaGym-shaped question file, ``{task: [question, ...]}``, for every persona.

    Rejected with a one-line error naming the file when it is not that shape.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: question file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read question file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        data = _QuestionFile.model_validate(raw).root
    except ValidationError as exc:
        raise InputError(f"{p}: expected {{task: [question, ...]}}: "
                         + describe_validation(exc, whole="file")) from None
    unknown = [t for t in data if t not in TASKS]
    if unknown:
        raise InputError(f"{p}: unknown task {unknown[0]!r}; tasks are: {', '.join(TASKS)}")
    empty = [t for t, qs in data.items() if not any(q.strip() for q in qs)]
    if not data or empty:
        raise InputError(f"{p}: no questions for {empty[0] if empty else 'any task'!r}")
    return {t: [q.strip() for q in qs if q.strip()] for t, qs in data.items()}
