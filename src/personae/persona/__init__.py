"""Persona schema, file formats, importers and rendering to system prompts."""

from personae.persona.importers import FORMATS, detect_format
from personae.persona.io import load_personas, load_population, save_personas
from personae.persona.render import BUILTIN_TEMPLATES, Template, load_template, render_system_prompt
from personae.persona.sample import load_bundled, resolve_personas
from personae.persona.schema import BigFive, Demographics, Persona, Population, Source

__all__ = [
    "BUILTIN_TEMPLATES",
    "FORMATS",
    "BigFive",
    "Demographics",
    "Persona",
    "Population",
    "Source",
    "Template",
    "detect_format",
    "load_bundled",
    "load_personas",
    "load_population",
    "load_template",
    "render_system_prompt",
    "resolve_personas",
    "save_personas",
]
