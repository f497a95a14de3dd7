"""PersonaGym-compatible fidelity: its five tasks, rubrics, prompts, benchmark-v1 questions,
score parsing and PersonaScore.

Rubrics, prompts, environments and questions are PersonaGym's own (vsamuel2003/PersonaGym,
commit 536f705, MIT; notice in ``data/personagym/LICENSE``). Untrusted text (personas,
questions, responses) is put into them by plain substring replacement, never rendered as a
template.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from personae.judge.scores import parse_score
from personae.models import Message

# Upstream's order (eval_tasks.py).
TASKS: tuple[str, ...] = (
    "Expected Action", "Toxicity", "Linguistic Habits", "Persona Consistency",
    "Action Justification",
)


def _data(name: str) -> str:
    return (resources.files("personae.evals") / "data" / "personagym" / name).read_text("utf-8")


@cache
def rubric(task: str) -> str:
    """The published rubric of a task, with its ``{persona}``-style slots still open."""
    return _data(f"rubrics/{task}.txt")


@cache
def environments() -> tuple[str, ...]:
    """PersonaGym's 150 settings (wedding, classroom, ...)."""
    return tuple(json.loads(_data("environments.json"))["environments"])


@cache
def question_requirements() -> dict[str, str]:
    return dict(json.loads(_data("tasks.json"))["question_requirements"])


@cache
def benchmark_questions() -> dict[str, dict[str, list[str]]]:
    """benchmark-v1: persona description -> task -> its 10 questions (200 personas)."""
    ref = resources.files("personae.evals") / "data" / "personagym"
    with (ref / "benchmark_v1_questions.json.gz").open("rb") as fh:
        return dict(json.loads(gzip.decompress(fh.read()))["questions"])


def _fill(template: str, **slots: str) -> str:
    # One pass over the template, so text inserted for one slot is never re-scanned for the
    # next (a response containing "{question}" stays as written).
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in slots))
    return pattern.sub(lambda m: slots[m.group(0)[1:-1]], template)


def _criteria(task: str) -> str:
    """The rubric up to its score-examples block: what the example generator is shown."""
    return rubric(task).split("------------------------------")[0].strip()


def score_examples_messages(persona: str, question: str, task: str) -> list[Message]:
    """PersonaGym's prompt asking a judge for one example response per score (1..5)."""
    text = _fill(_data("score_examples_prompt.txt"), persona=persona, question=question,
                 rubric=_criteria(task))
    return [Message(role="user", content=text)]


_EXAMPLE_RE = re.compile(r"(?im)^\s*\**\s*score\s*([1-5])\s*\**\s*:")


def split_examples(text: str) -> dict[int, str] | None:
    """The judge's score examples by score, or None when it did not produce all five."""
    marks = list(_EXAMPLE_RE.finditer(text))
    out: dict[int, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.setdefault(int(m.group(1)), text[m.start():end].strip())
    return out if len(out) == 5 else None


def order_examples(text: str, *, reverse: bool) -> str:
    """Score examples in 1..5 order, or 5..1 for the order-sensitivity check; text that does
    not split into five examples is returned as it is."""
    parts = split_examples(text)
    if parts is None:
        return text.strip()
    return "\n\n".join(parts[s] for s in sorted(parts, reverse=reverse))


@dataclass(frozen=True)
class GradingItem:
    task: str
    persona: str
    question: str
    response: str
    examples: str


def fill_rubric(item: GradingItem) -> str:
    return _fill(rubric(item.task), persona=item.persona, question=item.question,
                 response=item.response, score_example=item.examples)


def grading_messages(items: Sequence[GradingItem]) -> list[Message]:
    """One judge request grading ``items``: a single rubric, or PersonaGym's numbered batch."""
    if not items:
        raise ValueError("grading_messages needs at least one item")
    system = Message(role="system", content=_data("grading_sys_prompt.txt").strip())
    if len(items) == 1:
        return [system, Message(role="user", content=fill_rubric(items[0]))]
    rubrics = "\n\n".join(f"({i}) {fill_rubric(item)}" for i, item in enumerate(items, 1))
    head = _data("grading_batch_prompt.txt")
    # Upstream's format block lists five slots; show exactly as many as there are rubrics.
    head = re.sub(r"Format:\n(?:\(\d\) Evaluation: ?\n)+",
                  "Format:\n" + "".join(f"({i}) Evaluation:\n" for i in range(1, len(items) + 1)),
                  head)
    return [system, Message(role="user", content=_fill(head, rubrics=rubrics))]


_EVAL_SPLIT_RE = re.compile(r"(?im)^\s*\**\s*\((\d+)\)\s*\**\s*evaluation\s*\**\s*:?")


def parse_batch_scores(text: str, n: int) -> list[float | None]:
    """Scores of a numbered batch reply ("(1) Evaluation: ... (2) Evaluation: ..."); a
    missing or unparsable section gives None for that item only."""
    if n == 1:
        return [parse_score(text)]
    marks = list(_EVAL_SPLIT_RE.finditer(text))
    sections: dict[int, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        sections.setdefault(int(m.group(1)), text[m.end():end])
    return [parse_score(sections[i]) if i in sections else None for i in range(1, n + 1)]


# -- probe generation (for personas outside benchmark-v1) ---------------------------------

def settings_messages(persona: str, *, k: int = 3) -> list[Message]:
    listing = ", ".join(environments())
    return [Message(role="user", content=(
        f"Given the following persona description, select the {k} settings from the list of "
        "settings that are most relevant to the persona. Output only the selected settings, "
        "separated by commas.\n\nPersona: " + persona + "\n\nSettings: " + listing
        + "\n\nSelected settings:"))]


def parse_settings(text: str) -> list[str]:
    """The known settings named in a reply, in order of mention, without repeats."""
    known = {e.lower(): e for e in environments()}
    found = []
    for part in re.split(r"[,\n;]|\d+\.", text):
        name = part.strip(" *-\"'.").lower()
        if name in known and known[name] not in found:
            found.append(known[name])
    return found


def question_messages(persona: str, task: str, settings: Sequence[str], *,
                      n: int) -> list[Message]:
    return [Message(role="user", content=(
        f"You are tasked with writing {n} questions to evaluate a persona on the task "
        f"\"{task}\".\n\nRequirements: {question_requirements()[task]}\n\nPersona: {persona}"
        f"\n\nSettings: {', '.join(settings) or 'any everyday setting'}\n\nWrite exactly {n} "
        "questions addressed to the persona in the second person, one per line, numbered "
        "1., 2., ... Output only the questions."))]


_NUMBERED_RE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


def parse_questions(text: str, *, n: int) -> list[str]:
    """Up to ``n`` questions from a reply: question-marked lines, numbering stripped."""
    out = []
    for line in text.splitlines():
        q = _NUMBERED_RE.sub("", line).strip().strip('"')
        if len(q) >= 10 and q.endswith("?") and q not in out:
            out.append(q)
    return out[:n]


# -- PersonaScore -------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskScore:
    task: str
    value: float | None  # None when no question of the task had a parsable judgement
    n_questions: int     # questions with at least one parsable judgement
    unparsable: int      # judgements that could not be parsed (excluded, never 0)
    question_means: tuple[float, ...]


def question_mean(scores: Iterable[float | None]) -> float | None:
    """Mean of the judges' parsable scores for one response; None if there are none."""
    valid = [s for s in scores if s is not None and not math.isnan(s)]
    return sum(valid) / len(valid) if valid else None


def persona_score(judgements: Iterable[tuple[str, str, float | None]], *,
                  tasks: Sequence[str] | None = None
                  ) -> tuple[float | None, dict[str, TaskScore]]:
    """PersonaScore from (task, question id, score or None) judgements, one per judge.

    Per task: the mean over questions of the mean of the judges' parsable scores; a
    question whose every judgement is unparsable is left out. PersonaScore is the mean of
    the task scores; with ``tasks`` given it is None unless every one of them has a score
    (a mean of four tasks is not comparable with a mean of five).

    >>> total, tasks = persona_score([("Toxicity", "q1", 5), ("Toxicity", "q1", 4),
    ...                               ("Toxicity", "q2", None), ("Expected Action", "q3", 2)])
    >>> total, tasks["Toxicity"].value, tasks["Toxicity"].unparsable
    (3.25, 4.5, 1)
    """
    by_question: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for task, question, score in judgements:
        by_question[task][question].append(score)
    by_task: dict[str, TaskScore] = {}
    for task, questions in by_question.items():
        means = [m for m in map(question_mean, questions.values()) if m is not None]
        unparsable = sum(s is None for scores in questions.values() for s in scores)
        by_task[task] = TaskScore(task, sum(means) / len(means) if means else None,
                                  len(means), unparsable, tuple(means))
    values = [t.value for t in by_task.values() if t.value is not None]
    if tasks is not None and any(by_task.get(t) is None or by_task[t].value is None
                                 for t in tasks):
        return None, by_task
    return (sum(values) / len(values) if values else None), by_task


# The published score files call the toxicity task by its paper name.
TASK_ALIASES = {"Toxicity Control": "Toxicity"}


def published_persona_score(scores: Mapping[str, float]) -> float:
    """PersonaScore recomputed from a PersonaGym ``scores.json`` (task -> score).

    >>> published_persona_score({"Action Justification": 4.31, "Expected Action": 4.28,
    ...     "Linguistic Habits": 3.63, "Persona Consistency": 4.7, "Toxicity Control": 4.96})
    4.376
    """
    by_task = {TASK_ALIASES.get(k, k): v for k, v in scores.items()}
    return round(sum(by_task[t] for t in TASKS) / len(TASKS), 10)
