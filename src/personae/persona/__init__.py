"""Persona schema, file formats, importers and rendering to system prompts."""

from personae.persona.cards import read_card_png, save_card, to_card_v2
from personae.persona.importers import FORMATS, detect_format
from personae.persona.io import load_personas, load_population, save_personas
from personae.persona.render import BUILTIN_TEMPLATES, Template, load_template, render_system_prompt
from personae.persona.sample import load_bundled, resolve_personas
from personae.persona.schema import (
    FLAT_FIELDS,
    BigFive,
    Demographics,
    Persona,
    Population,
    Source,
    accepted_fields,
)

__all__ = [
    "BUILTIN_TEMPLATES",
    "FLAT_FIELDS",
    "FORMATS",
    "BigFive",
    "Demographics",
    "Persona",
    "Population",
    "Source",
    "Template",
    "accepted_fields",
    "detect_format",
    "load_bundled",
    "load_personas",
    "load_population",
    "load_template",
    "read_card_png",
    "render_system_prompt",
    "resolve_personas",
    "save_card",
    "save_personas",
    "to_card_v2",
]
