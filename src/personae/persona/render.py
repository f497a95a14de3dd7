"""Render a persona into a system prompt through a sandboxed Jinja2 template.

Persona fields are passed to the template as data: a field that contains ``{{ 7*7 }}`` is
printed as those characters, never evaluated. Templates themselves run in Jinja2's
immutable sandbox, so a user template file cannot reach Python internals.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from personae.errors import InputError
from personae.persona.schema import Persona

BUILTIN_TEMPLATES = ("personagym", "card", "facts")
DEFAULT_TEMPLATE = "card"


@dataclass(frozen=True)
class Template:
    """A compiled prompt template and where it came from."""

    name: str
    source: str
    compiled: jinja2.Template

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    def render(self, persona: Persona) -> str:
        context = {
            "p": persona.model_dump(mode="json"),
            "persona": persona.model_dump(mode="json"),
            "description": persona.describe(),
            "traits": persona.traits.as_dict() if persona.traits else {},
        }
        try:
            return self.compiled.render(context).strip()
        except Exception as exc:
            # Whatever a template does wrong (undefined name, 1/0, a huge range, runaway
            # recursion), it is the template's fault: bad input, not a crash.
            raise InputError(f"template {self.name}{_template_line(exc)}: "
                             f"{type(exc).__name__}: {exc}") from None

    def unused_fields(self, persona: Persona) -> list[str]:
        """The fields of ``persona`` this template leaves out of the prompt: those whose
        removal renders the very same prompt (``demographics.country``, ``extra.hobby``...).

        Removal is tested field by field, so it holds for any template, however it reads
        the persona (directly, through ``description``, or not at all).

        >>> p = Persona(name="Ana", summary="A nurse.", extra={"hobby": "chess"})
        >>> load_template("card").unused_fields(p)
        ['extra.hobby']
        """
        full = self.render(persona)
        data = persona.model_dump(mode="json", exclude_none=True)
        unused = []
        for path in _field_paths(data):
            trimmed = copy.deepcopy(data)
            parent = trimmed
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
            try:
                without = Persona.model_validate(trimmed)
                if self.render(without) == full:
                    unused.append(".".join(path))
            except ValueError:
                # The field is all the content there is, or the template fails without it
                # (an InputError is a ValueError): either way, the prompt depends on it.
                continue
        return unused


# Nested fields whose keys are tested one by one; the rest are tested as a whole.
_NESTED = ("demographics", "traits", "extra")


def _field_paths(data: dict[str, Any]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        if key in ("id", "source") or value in ({}, [], ""):
            continue
        if key in _NESTED and isinstance(value, dict):
            paths += [(key, k) for k, v in value.items() if v not in (None, [], "", {})]
        else:
            paths.append((key,))
    return paths


def _template_line(exc: BaseException) -> str:
    """``:N`` for the template line an error happened on, when the traceback shows it."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f":{line}" if line else ""


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
    )


def load_template(name_or_path: str | os.PathLike[str] = DEFAULT_TEMPLATE) -> Template:
    """A built-in template by name (``personagym``, ``card``, ``facts``) or a Jinja2 file.

    >>> load_template("card").name
    'card'
    """
    key = str(name_or_path)
    if key in BUILTIN_TEMPLATES:
        ref = resources.files("personae.persona") / "data" / "templates" / f"{key}.j2"
        source = ref.read_text(encoding="utf-8")
    else:
        path = Path(key)
        if not path.is_file():
            raise InputError(f"unknown template {key!r}: not a built-in "
                             f"({', '.join(BUILTIN_TEMPLATES)}) and no such file")
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: template is not UTF-8 text") from None
    try:
        compiled = _env().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"{key}:{exc.lineno}: template syntax error: {exc.message}") from None
    return Template(name=key, source=source, compiled=compiled)


def render_system_prompt(persona: Persona, template: str | Template = DEFAULT_TEMPLATE) -> str:
    """The system prompt that makes a model play ``persona``.

    >>> render_system_prompt(Persona(summary="a retired pilot from Oslo."), "personagym")[:48]
    'Adopt the identity of a retired pilot from Oslo.'
    """
    tpl = template if isinstance(template, Template) else load_template(template)
    return tpl.render(persona)
