"""Converters from the persona formats people already have into `Persona`.

Each importer takes one parsed record (a string or a dict) and returns the keyword arguments
of a `Persona`. `detect_format` picks the importer from the record's shape, so a file can be
loaded without saying what it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from personae.persona.cards import CARD_FORMATS, CardError, card_format, card_to_fields

FORMATS = ("personae", "personagym", "personahub", "personachat", "tinytroupe", *CARD_FORMATS)

_PERSONACHAT_PREFIX = re.compile(r"^\s*(?:\d+\s+)?(?:your|partner's) persona:\s*", re.IGNORECASE)
_BIG_FIVE = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
# TinyTroupe writes Big Five levels as words ("High. Very imaginative."); map them onto 1-5.
_LEVEL_WORDS = {
    "very low": 1.0, "low": 1.5, "medium-low": 2.5, "moderate": 3.0, "medium": 3.0,
    "average": 3.0, "medium-high": 3.5, "high": 4.5, "very high": 5.0,
}


class FormatError(ValueError):
    """A record does not have the shape its format requires."""


def detect_format(record: Any) -> str:
    """Guess a record's format from its shape.

    >>> detect_format("A 35-year-old chef from Lyon")
    'personagym'
    >>> detect_format({"persona": "A retired pilot"})
    'personahub'
    >>> detect_format({"spec": "chara_card_v3", "data": {"name": "Seraphina"}})
    'chara_card_v3'
    """
    if isinstance(record, str):
        return "personachat" if _PERSONACHAT_PREFIX.match(record) else "personagym"
    if isinstance(record, list) and all(isinstance(x, str) for x in record):
        return "personachat"
    if isinstance(record, dict):
        try:
            card = card_format(record)
        except CardError as exc:
            raise FormatError(str(exc)) from None
        if card:
            return card
        if record.get("type") == "TinyPerson" or isinstance(record.get("persona"), dict):
            return "tinytroupe"
        if isinstance(record.get("persona"), str):  # not a Persona field: PersonaHub
            return "personahub"
        if isinstance(record.get("personality"), list):
            return "personachat"
        return "personae"
    raise FormatError(f"expected a persona object or string, got {type(record).__name__}")


def from_personagym(record: Any) -> dict[str, Any]:
    """PersonaGym one-liner: ``"A 71-year-old retired nurse from Italy, ..."``."""
    if not isinstance(record, str) or not record.strip():
        raise FormatError("a PersonaGym persona is a non-empty one-line description")
    return {"summary": record.strip(), "source": {"format": "personagym"}}


def from_personahub(record: Any) -> dict[str, Any]:
    """PersonaHub line: ``{"persona": "A chemist who ..."}`` (extra keys kept in ``extra``)."""
    if not isinstance(record, dict) or not isinstance(record.get("persona"), str):
        raise FormatError('a PersonaHub record is {"persona": "<description>"}')
    text = record["persona"].strip()
    if not text:
        raise FormatError("'persona' is empty")
    out: dict[str, Any] = {"summary": text, "source": {"format": "personahub"}}
    for key in ("id", "name"):  # keep these where Persona has them
        if isinstance(record.get(key), str):
            out[key] = record[key]
    out["extra"] = {k: v for k, v in record.items() if k not in ("persona", *out)}
    return out


def from_personachat(record: Any) -> dict[str, Any]:
    """PersonaChat facts: a list of first-person sentences, ``{"personality": [...]}`` or
    ConvAI2 lines ``"your persona: i like to ski."``."""
    if isinstance(record, dict):
        facts = record.get("personality")
        extra = {k: v for k, v in record.items() if k not in ("personality", "utterances")}
    else:
        facts, extra = record, {}
    if isinstance(facts, str):
        facts = [facts]
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise FormatError("PersonaChat facts must be a list of strings")
    facts = [_PERSONACHAT_PREFIX.sub("", f).strip() for f in facts]
    facts = [f for f in facts if f]
    if not facts:
        raise FormatError("no persona facts found")
    return {"facts": facts, "extra": extra, "source": {"format": "personachat"}}


def from_tinytroupe(record: Any) -> dict[str, Any]:
    """TinyTroupe agent spec ``{"type": "TinyPerson", "persona": {...}}`` (or its inner dict).

    Fields with a place in `Persona` are mapped; everything else, and the original wording
    of the Big Five levels, is kept under ``extra`` so nothing is lost.
    """
    if not isinstance(record, dict):
        raise FormatError("a TinyTroupe agent is a JSON object")
    spec = record.get("persona", record)
    if not isinstance(spec, dict) or not spec.get("name"):
        raise FormatError("a TinyTroupe agent needs persona.name")
    occupation = spec.get("occupation")
    personality = spec.get("personality") or {}
    if not isinstance(personality, dict):
        raise FormatError("persona.personality must be an object (traits, big_five)")
    occ_title = occupation.get("title") if isinstance(occupation, dict) else occupation
    demographics = {
        "age": spec.get("age"),
        "gender": spec.get("gender"),
        "nationality": spec.get("nationality"),
        "location": spec.get("residence"),
        "education": spec.get("education") if isinstance(spec.get("education"), str) else None,
        "occupation": occ_title if isinstance(occ_title, str) else None,
    }
    if isinstance(occupation, dict) and occupation.get("organization"):
        demographics["organization"] = occupation["organization"]
    mapped = {"name", "age", "gender", "nationality", "residence", "occupation", "beliefs",
              "other_facts"}
    if isinstance(spec.get("education"), str):
        mapped.add("education")
    if isinstance(spec.get("style"), str):
        mapped.add("style")
    extra = {k: v for k, v in spec.items() if k not in mapped and k != "personality"}
    rest_of_personality = {k: v for k, v in personality.items() if k != "traits"}
    if rest_of_personality:
        extra["personality"] = rest_of_personality  # keeps the Big Five wording
    backstory = occupation.get("description") if isinstance(occupation, dict) else None
    return {
        "name": spec["name"],
        "demographics": {k: v for k, v in demographics.items() if v is not None},
        "facts": _strings(personality.get("traits")) + _strings(spec.get("other_facts")),
        "traits": _tinytroupe_big_five(personality.get("big_five")) or None,
        "style": spec.get("style") if isinstance(spec.get("style"), str) else None,
        "backstory": str(backstory) if backstory else None,
        "values": _strings(spec.get("beliefs")),
        "extra": extra,
        "source": {"format": "tinytroupe"},
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def _tinytroupe_big_five(big_five: Any) -> dict[str, float]:
    if not isinstance(big_five, dict):
        return {}
    out: dict[str, float] = {}
    for trait in _BIG_FIVE:
        text = big_five.get(trait)
        if not isinstance(text, str):
            continue
        head = text.split(".")[0].strip().lower()
        if head in _LEVEL_WORDS:
            out[trait] = _LEVEL_WORDS[head]
    return out


def from_personae(record: Any) -> dict[str, Any]:
    """The native format: the fields of `Persona` as a mapping."""
    if not isinstance(record, dict):
        raise FormatError("a persona is a mapping of fields (name, summary, facts, ...)")
    return dict(record)


def from_chara_card(record: Any) -> dict[str, Any]:
    """A character card (V1, V2 or V3 JSON): see `personae.persona.cards` for the mapping."""
    try:
        return card_to_fields(record)
    except CardError as exc:
        raise FormatError(str(exc)) from None


IMPORTERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "personae": from_personae,
    "personagym": from_personagym,
    "personahub": from_personahub,
    "personachat": from_personachat,
    "tinytroupe": from_tinytroupe,
    **dict.fromkeys(CARD_FORMATS, from_chara_card),
}
