"""Trait files: contrastive system-prompt pairs and questions that define a persona vector.

The format is persona_vectors' (also used by the Assistant Axis trait set)::

    {"instruction": [{"pos": "Be ...", "neg": "Do not be ..."}, ...],
     "questions": ["What would you do if ...?", ...],
     "eval_prompt": "... {question} ... {answer} ..."}

A trait is named by its file's stem. Ten traits are bundled (see ``data/traits/NOTICE.md``)
and resolve by name: ``load_trait("extroverted")``.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from personae.errors import InputError, describe_validation

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class InstructionPair(BaseModel):
    """One contrastive pair of system prompts: ``pos`` elicits the trait, ``neg`` its opposite."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pos: Text
    neg: Text


class TraitSpec(BaseModel):
    """A trait file, validated. ``source``/``source_hash`` say which file it came from.

    >>> t = TraitSpec(name="calm", instruction=[{"pos": "Be calm.", "neg": "Be agitated."}],
    ...               questions=["How was your day?", "What annoys you?"])
    >>> len(t.limit(n_questions=1).questions)
    1
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: Text
    instruction: list[InstructionPair] = Field(min_length=1)
    questions: list[Text] = Field(min_length=1)
    eval_prompt: str | None = None
    source: str | None = None
    source_hash: str | None = None  # sha256 of the file's bytes

    @property
    def n_pairs(self) -> int:
        """Contrastive samples this trait yields: instruction pairs × questions."""
        return len(self.instruction) * len(self.questions)

    def limit(self, *, n_instructions: int | None = None,
              n_questions: int | None = None) -> TraitSpec:
        """The first ``n_instructions`` pairs and the first ``n_questions`` questions."""
        for name, n in (("n_instructions", n_instructions), ("n_questions", n_questions)):
            if n is not None and n < 1:
                raise InputError(f"{name} must be at least 1 (got {n})")
        return self.model_copy(update={
            "instruction": self.instruction[:n_instructions],
            "questions": self.questions[:n_questions],
        })


def bundled_traits() -> list[str]:
    """Names of the traits that ship with personae.

    >>> "extroverted" in bundled_traits()
    True
    """
    folder = resources.files("personae.steer").joinpath("data", "traits")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def load_trait(ref: str | Path) -> TraitSpec:
    """A trait from a file path or a bundled trait's name.

    >>> t = load_trait("extroverted")
    >>> t.name, len(t.instruction), len(t.questions)
    ('extroverted', 5, 40)
    """
    path = Path(ref)
    if path.is_file():
        return parse_trait_file(path.read_bytes(), name=path.stem, source=str(path))
    if isinstance(ref, str) and ref in bundled_traits():
        res = resources.files("personae.steer").joinpath("data", "traits", f"{ref}.json")
        return parse_trait_file(res.read_bytes(), name=ref, source=f"bundled:{ref}")
    if path.is_dir():
        raise InputError(f"{ref}: is a directory, not a trait file")
    raise InputError(f"{ref}: no such trait file or bundled trait (bundled: "
                     + ", ".join(bundled_traits()) + ")")


def parse_trait_file(data: bytes, *, name: str, source: str) -> TraitSpec:
    """Validate a trait file's bytes; every problem is one `InputError` line naming ``source``.

    >>> parse_trait_file(b'{"instruction": [{"pos": "Be kind."}], "questions": ["Hi?"]}',
    ...                  name="kind", source="kind.json")
    Traceback (most recent call last):
    personae.errors.InputError: kind.json: instruction.0.neg: Field required
    """
    try:
        raw = json.loads(data)
    except UnicodeDecodeError:
        raise InputError(f"{source}: not a text file (a trait file is JSON)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: a trait file is a JSON object with 'instruction' and "
                         f"'questions' (got a {type(raw).__name__})")
    try:
        return TraitSpec.model_validate({**raw, "name": name, "source": source,
                                         "source_hash": hashlib.sha256(data).hexdigest()})
    except ValidationError as exc:
        raise InputError(f"{source}: {describe_validation(exc, whole='trait file')}") from None
