"""The Persona and Population models: one typed schema for every persona format."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def slugify(text: str, max_len: int = 48) -> str:
    """Lower-case ASCII slug: ``"Ana María López" -> "ana-mar-a-l-pez"``."""
    slug = _SLUG_RE.sub("-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-")


class Demographics(BaseModel):
    """Who the persona is, in survey terms. Unknown keys are kept (e.g. ``religion``)."""

    model_config = ConfigDict(extra="allow")

    age: int | None = Field(default=None, ge=0, le=130)
    gender: str | None = None
    location: str | None = None
    nationality: str | None = None
    occupation: str | None = None
    education: str | None = None
    languages: list[str] = Field(default_factory=list)


class BigFive(BaseModel):
    """Big Five targets on the 1-5 Likert scale of IPIP instruments (any may be absent)."""

    model_config = ConfigDict(extra="forbid")

    openness: float | None = Field(default=None, ge=1, le=5)
    conscientiousness: float | None = Field(default=None, ge=1, le=5)
    extraversion: float | None = Field(default=None, ge=1, le=5)
    agreeableness: float | None = Field(default=None, ge=1, le=5)
    neuroticism: float | None = Field(default=None, ge=1, le=5)

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Source(BaseModel):
    """Where a persona came from: the format it was read from, the file and line, upstream."""

    model_config = ConfigDict(extra="allow")

    format: str = "personae"
    path: str | None = None
    line: int | None = None
    upstream: str | None = None
    license: str | None = None


class Persona(BaseModel):
    """A persona: who to be, in a form any model backend and any evaluation can use.

    Example:
        >>> p = Persona(name="Ana", summary="A 34-year-old nurse from Lisbon.",
        ...             facts=["I work night shifts."], traits={"extraversion": 4})
        >>> p.id
        'ana'
        >>> p.traits.extraversion
        4.0
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = ""
    name: str | None = None
    summary: str | None = None
    facts: list[str] = Field(default_factory=list)
    demographics: Demographics = Field(default_factory=Demographics)
    traits: BigFive | None = None
    style: str | None = None
    backstory: str | None = None
    values: list[str] = Field(default_factory=list)
    knowledge_limits: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)
    source: Source | None = Field(default=None, exclude=False)

    @field_validator("facts", "values", "knowledge_limits", mode="before")
    @classmethod
    def _one_string_is_a_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("facts", "values", "knowledge_limits")
    @classmethod
    def _drop_blank(cls, v: list[str]) -> list[str]:
        return [s.strip() for s in v if s and s.strip()]

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if v and not _ID_RE.match(v):
            raise ValueError("must be 1-128 characters of letters, digits, '_', '.', ':' or '-'")
        return v

    @model_validator(mode="after")
    def _has_content_and_id(self) -> Persona:
        if not any([self.summary, self.facts, self.backstory, self.name]):
            raise ValueError("a persona needs at least one of: summary, facts, backstory, name")
        if not self.id:
            # Assigning inside an after-validator would re-run validation; set it directly.
            self.__dict__["id"] = self._derive_id()
        return self

    def _derive_id(self) -> str:
        if self.name:
            return slugify(self.name) or "p-" + self.content_hash()[:10]
        return "p-" + self.content_hash()[:10]

    def content_hash(self) -> str:
        """SHA-256 of the persona's content (everything but ``id`` and ``source``)."""
        payload = self.model_dump(mode="json", exclude={"id", "source"}, exclude_none=True)
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe(self) -> str:
        """One dense line describing the persona (its summary, or one composed from fields)."""
        if self.summary:
            return self.summary.strip()
        d = self.demographics
        parts: list[str] = []
        if self.name:
            parts.append(self.name)
        who = ", ".join(
            x
            for x in [
                f"{d.age}-year-old" if d.age is not None else None,
                d.gender,
                d.occupation,
                f"from {d.location or d.nationality}" if (d.location or d.nationality) else None,
            ]
            if x
        )
        if who:
            parts.append(who)
        text = ", ".join(parts)
        if self.facts:
            text = (text + ". " if text else "") + " ".join(self.facts)
        elif self.backstory:
            text = (text + ". " if text else "") + self.backstory
        return text.strip()


class Population(BaseModel):
    """Many personas plus the spec that generated them (quotas, seed, dedup settings)."""

    model_config = ConfigDict(extra="forbid")

    personas: list[Persona]
    spec: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_ids(self) -> Population:
        seen: set[str] = set()
        for p in self.personas:
            if p.id in seen:
                raise ValueError(f"duplicate persona id {p.id!r}")
            seen.add(p.id)
        return self

    def get(self, persona_id: str) -> Persona:
        for p in self.personas:
            if p.id == persona_id:
                return p
        raise KeyError(persona_id)

    def __len__(self) -> int:
        return len(self.personas)
