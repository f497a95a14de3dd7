"""The Persona and Population models: one typed schema for every persona format."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")

# The flat demographic keys people write at the top of a persona ("age: 67"), and the key
# under ``demographics`` each one fills. ``city`` and ``country`` keep their own names: a
# persona often gives both, and the card template renders any demographic key.
FLAT_FIELDS: dict[str, str] = {
    "age": "age",
    "gender": "gender", "sex": "gender",
    "occupation": "occupation", "job": "occupation", "profession": "occupation",
    "location": "location", "residence": "location", "city": "city", "country": "country",
    "nationality": "nationality",
    "ethnicity": "ethnicity",
    "education": "education",
    "languages": "languages", "language": "languages",
}


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

    @field_validator("languages", mode="before")
    @classmethod
    def _one_language_is_a_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


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

    The common demographic keys may also be given flat (see `FLAT_FIELDS`):

        >>> Persona(name="Ana", age=34, job="nurse").demographics.occupation
        'nurse'
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

    @model_validator(mode="before")
    @classmethod
    def _lift_flat_fields(cls, data: Any) -> Any:
        """Accept ``age: 67`` beside ``name`` (the file people write first) by moving the
        flat demographic keys into ``demographics``; refuse any other unknown key with a
        guess at what was meant."""
        if not isinstance(data, dict):
            return data
        return lift_flat_fields(data)

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


def accepted_fields() -> list[str]:
    """Every top-level key a persona mapping may have: the `Persona` fields, then the flat
    demographic keys (and their synonyms) that are moved into ``demographics``.

    >>> accepted_fields()[:3]
    ['id', 'name', 'summary']
    >>> "job" in accepted_fields()
    True
    """
    return [*Persona.model_fields, *FLAT_FIELDS]


def lift_flat_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its flat demographic keys moved under ``demographics``.

    Raises ValueError for a key that is neither a persona field nor a flat one (naming the
    closest accepted key), and for two keys that give the same demographic different values.
    Nested input comes back unchanged, so ids and content hashes of existing files hold.

    >>> lift_flat_fields({"name": "Ana", "age": 34, "job": "nurse"})
    {'name': 'Ana', 'demographics': {'age': 34, 'occupation': 'nurse'}}
    >>> lift_flat_fields({"name": "Ana", "trait": {}})
    Traceback (most recent call last):
    ...
    ValueError: unknown field 'trait'; did you mean 'traits'?
    """
    unknown = [k for k in data if k not in Persona.model_fields and k not in FLAT_FIELDS]
    if unknown:
        raise ValueError("; ".join(_unknown_field(k) for k in unknown))
    flat = [k for k in data if k in FLAT_FIELDS]
    if not flat:
        return data
    demographics = data.get("demographics")
    if isinstance(demographics, BaseModel):
        demographics = demographics.model_dump(exclude_unset=True)
    if demographics is None:
        demographics = {}
    if not isinstance(demographics, dict):  # ValueError: pydantic reports only that kind
        raise ValueError(f"demographics must be a mapping to take {flat[0]!r} "  # noqa: TRY004
                         f"(got {type(demographics).__name__})")
    merged = dict(demographics)
    given_by: dict[str, str] = {}  # demographic key -> the flat key that set it
    for key in flat:
        value, target = data[key], FLAT_FIELDS[key]
        if value is None:
            continue
        if target in given_by and merged[target] != value:
            raise ValueError(f"{given_by[target]!r} and {key!r} disagree on "
                             f"demographics.{target} ({merged[target]!r} vs {value!r}); "
                             "keep one")
        if target not in given_by and merged.get(target) not in (None, value):
            raise ValueError(f"{key!r} ({value!r}) conflicts with demographics.{target} "
                             f"({merged[target]!r}); keep one")
        merged[target] = value
        given_by[target] = key
    out = {k: v for k, v in data.items() if k not in FLAT_FIELDS}
    out["demographics"] = merged
    return out


def _unknown_field(key: Any) -> str:
    text = str(key)
    if text.lower() in BigFive.model_fields:
        return f"unknown field {text!r}; Big Five levels go under traits ({text.lower()}: 1-5)"
    close = difflib.get_close_matches(text.lower(), accepted_fields(), n=1, cutoff=0.7)
    if close:
        return f"unknown field {text!r}; did you mean {close[0]!r}?"
    return f"unknown field {text!r}; free-form keys go under extra"


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
