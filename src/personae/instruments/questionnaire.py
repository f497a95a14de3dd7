"""Questionnaire files: items, scales, reverse keys, response scale and prompt templates.

A questionnaire is a YAML or JSON file any user can write (the bundled IPIP-NEO banks in
``data/`` are examples)::

    name: my-scale
    source: where the items come from
    licence: under what terms
    response_scale: [{value: 1, label: Disagree}, {value: 5, label: Agree}]
    prompts: [{id: default, template: 'Statement: "{item}". Rate it 1-5: '}]
    scales: [{id: E, name: Extraversion}, {id: E1, name: Friendliness, domain: E}]
    items: [{id: "1", text: Make friends easily., scale: E, facet: E1, reversed: false}]

Prompt templates are filled by plain replacement of ``{item}``, never by a template engine,
so item text (which users write) cannot inject template code. A template may also hold one
``{options}`` slot: the response options as ``1 = "Disagree", ..., 5 = "Agree"``, listed in the
order shown (administration reverses them to check for option-order effects).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personae.errors import InputError, describe_validation

ITEM_SLOT = "{item}"
OPTIONS_SLOT = "{options}"
BUNDLED = {"ipip-120": "ipip-neo-120.yaml", "ipip-300": "ipip-neo-300.yaml"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResponseOption(_Frozen):
    """One point of the response scale: the number scored and the label shown."""

    value: int | float
    label: str = Field(min_length=1)


class PromptTemplate(_Frozen):
    """How one item is put to a model: ``template`` with exactly one ``{item}`` slot."""

    id: str = Field(min_length=1)
    template: str

    @field_validator("template")
    @classmethod
    def _one_slot(cls, v: str) -> str:
        if v.count(ITEM_SLOT) != 1:
            raise ValueError(f"template must contain {ITEM_SLOT} exactly once")
        if v.count(OPTIONS_SLOT) > 1:
            raise ValueError(f"template may contain {OPTIONS_SLOT} at most once")
        return v

    @property
    def lists_options(self) -> bool:
        """Whether the template shows the response options through an ``{options}`` slot."""
        return OPTIONS_SLOT in self.template

    def fill(self, text: str, options: str = "") -> str:
        """The template with ``{item}`` replaced by ``text`` and ``{options}`` by ``options``.

        The item text goes in last, so braces in it stay literal.

        >>> PromptTemplate(id="t", template='"{item}" ({options}): ').fill("Talk {a lot}.", "1-5")
        '"Talk {a lot}." (1-5): '
        """
        before, after = self.template.split(ITEM_SLOT)
        before, after = before.replace(OPTIONS_SLOT, options), after.replace(OPTIONS_SLOT, options)
        return before + text + after


class Scale(_Frozen):
    """A scored scale: a domain, or a facet when ``domain`` names its parent scale."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    domain: str | None = None


class Item(_Frozen):
    """One statement. ``scale`` is the domain it scores on; ``facet`` the narrower scale."""

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    scale: str = Field(min_length=1)
    facet: str | None = None
    reversed: bool = False

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        # Numbered banks write ids as bare YAML ints; answers may key them either way.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class Questionnaire(_Frozen):
    """A validated questionnaire; see the module docstring for the file format.

    >>> q = Questionnaire(name="tiny", response_scale=[{"value": 1, "label": "no"},
    ...     {"value": 5, "label": "yes"}], scales=[{"id": "E", "name": "Extraversion"}],
    ...     items=[{"id": 1, "text": "Talk a lot.", "scale": "E"}])
    >>> q.low, q.high, q.midpoint
    (1, 5, 3.0)
    >>> q.render("1")
    'Statement: "Talk a lot."\\nAnswer with one number: 1 = "no", 5 = "yes".\\nAnswer: '
    """

    name: str = Field(min_length=1)
    title: str | None = None
    source: str | None = None
    licence: str | None = None
    response_scale: tuple[ResponseOption, ...] = Field(min_length=2)
    prompts: tuple[PromptTemplate, ...] = ()
    scales: tuple[Scale, ...] = Field(min_length=1)
    items: tuple[Item, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Questionnaire:
        values = [o.value for o in self.response_scale]
        if len(set(values)) != len(values):
            raise ValueError("response_scale has a repeated value")
        for kind, ids in (
            ("scale", [s.id for s in self.scales]),
            ("item", [i.id for i in self.items]),
            ("prompt", [p.id for p in self.prompts]),
        ):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise ValueError(f"duplicate {kind} id {i!r}")
                seen.add(i)
        scales = {s.id: s for s in self.scales}
        for s in self.scales:
            if s.domain is not None and s.domain not in scales:
                raise ValueError(f"scale {s.id!r} refers to unknown domain {s.domain!r}")
        for it in self.items:
            if it.scale not in scales:
                raise ValueError(f"item {it.id!r} refers to unknown scale {it.scale!r}")
            if it.facet is not None:
                facet = scales.get(it.facet)
                if facet is None:
                    raise ValueError(f"item {it.id!r} refers to unknown facet {it.facet!r}")
                if facet.domain != it.scale:
                    raise ValueError(
                        f"item {it.id!r}: facet {it.facet!r} is not a facet of scale {it.scale!r}"
                    )
        return self

    @property
    def low(self) -> int | float:
        """Lowest response value."""
        return min(o.value for o in self.response_scale)

    @property
    def high(self) -> int | float:
        """Highest response value."""
        return max(o.value for o in self.response_scale)

    @property
    def midpoint(self) -> float:
        """Middle of the response scale, the neutral point acquiescence is measured from."""
        return (self.low + self.high) / 2

    def item(self, item_id: str | int) -> Item:
        """The item with this id (ints are accepted for numbered banks)."""
        found = self._items_by_id().get(str(item_id))
        if found is None:
            raise InputError(f"questionnaire {self.name}: unknown item {item_id!r}")
        return found

    def _items_by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    @property
    def options(self) -> tuple[ResponseOption, ...]:
        """The response options from the lowest value to the highest."""
        return tuple(sorted(self.response_scale, key=lambda o: o.value))

    def templates(self) -> tuple[PromptTemplate, ...]:
        """The prompt templates, or the plain default when the file has none."""
        return self.prompts or (DEFAULT_PROMPT,)

    def template(self, prompt_id: str | None = None) -> PromptTemplate:
        """The template with this id (the first one when ``prompt_id`` is None)."""
        if prompt_id is None:
            return self.templates()[0]
        for p in self.templates():
            if p.id == prompt_id:
                return p
        known = ", ".join(p.id for p in self.templates())
        raise InputError(f"questionnaire {self.name}: unknown prompt {prompt_id!r} "
                         f"(prompts: {known})")

    def options_text(self, *, reverse: bool = False) -> str:
        """The response options as the ``{options}`` slot shows them.

        Numbers always run from low to high; ``reverse`` pairs them with the labels in the
        opposite order (1 = the highest label), so the answer at position i of the scale
        means the value at the mirrored position (see `true_value`).
        """
        opts = self.options
        labels = [o.label for o in (reversed(opts) if reverse else opts)]
        return ", ".join(f'{format_value(o.value)} = "{label}"'
                         for o, label in zip(opts, labels, strict=True))

    def true_value(self, shown: float, *, reverse: bool = False) -> float:
        """The scale value meant by answering ``shown`` when the options were listed
        reversed (``reverse``): the value at the mirrored position of the scale."""
        values = [o.value for o in self.options]
        if shown not in values:
            raise InputError(f"questionnaire {self.name}: {shown!r} is not a response value")
        return values[len(values) - 1 - values.index(shown)] if reverse else shown

    def render(self, item_id: str | int, prompt_id: str | None = None, *,
               reverse_options: bool = False) -> str:
        """The prompt for one item: a template's ``{item}`` replaced by the item text and its
        ``{options}`` slot (if any) by the response options, reversed if asked.

        Without prompts in the file a plain default lists the response labels.

        >>> q = load_questionnaire("ipip-120")
        >>> q.render(1, "plain", reverse_options=True).splitlines()[1][:70]
        'How accurately does this describe you? Answer with one number: 1 = "Ve'
        """
        template = self.template(prompt_id)
        if reverse_options and not template.lists_options:
            raise InputError(f"questionnaire {self.name}: prompt {template.id!r} has no "
                             f"{OPTIONS_SLOT} slot, so its options cannot be reversed")
        return template.fill(self.item(item_id).text,
                             self.options_text(reverse=reverse_options))


def format_value(value: float) -> str:
    """A response value as shown and answered: ``4`` rather than ``4.0``.

    >>> format_value(4.0), format_value(2.5)
    ('4', '2.5')
    """
    return str(int(value)) if float(value).is_integer() else str(value)


DEFAULT_PROMPT = PromptTemplate(
    id="default",
    template='Statement: "{item}"\nAnswer with one number: {options}.\nAnswer: ',
)


def _read_mapping(path: Path) -> Any:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(raw)
        return yaml.safe_load(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise InputError(f"{path}: invalid YAML{where}: {problem}") from None


def parse_questionnaire(data: Any, *, origin: str = "questionnaire") -> Questionnaire:
    """Validate an already-parsed mapping; errors name ``origin`` and the item where possible.

    >>> parse_questionnaire({"name": "x"}, origin="x.yaml")
    Traceback (most recent call last):
    ...
    personae.errors.InputError: x.yaml: response_scale: Field required (+2 more)
    """
    if not isinstance(data, Mapping):
        raise InputError(
            f"{origin}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return Questionnaire.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{origin}: {_where(exc, data)}") from None


def _where(exc: ValidationError, data: Mapping[str, Any]) -> str:
    # Point at "items.17 (id '18')" rather than a bare list index users must count to.
    loc = exc.errors()[0]["loc"]
    msg = describe_validation(exc, whole="questionnaire")
    if not loc:  # a whole-file check already names what it is about
        msg = msg.removeprefix("questionnaire: ")
    if len(loc) >= 2 and loc[0] in ("items", "scales", "prompts") and isinstance(loc[1], int):
        entries = data.get(loc[0])
        if (
            isinstance(entries, list)
            and loc[1] < len(entries)
            and isinstance(entries[loc[1]], dict)
        ):
            ident = entries[loc[1]].get("id")
            if ident is not None:
                msg = f"{msg} [{loc[0][:-1]} id {ident!r}]"
    return msg.replace("\n", " ")


@lru_cache(maxsize=8)
def _bundled(name: str) -> Questionnaire:
    ref = resources.files("personae.instruments").joinpath("data", BUNDLED[name])
    with resources.as_file(ref) as path:
        return load_questionnaire(path)


def load_questionnaire(name_or_path: str | Path) -> Questionnaire:
    """A bundled questionnaire by name (``ipip-120``, ``ipip-300``) or one read from a file.

    Any problem with the file raises `InputError` with one line naming the file.

    >>> q = load_questionnaire("ipip-120")
    >>> len(q.items), q.item(9).reversed, q.item(9).scale
    (120, True, 'A')
    """
    if isinstance(name_or_path, str) and name_or_path in BUNDLED:
        return _bundled(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(BUNDLED))
        raise InputError(f"{path}: no such questionnaire file (bundled names: {known})")
    return parse_questionnaire(_read_mapping(path), origin=str(path))


def load_answers(path: str | Path, questionnaire: Questionnaire) -> dict[str, float | None]:
    """Answers read from JSON or YAML, checked against the questionnaire.

    Accepts ``{item_id: value|null}`` or five-factor-e's
    ``{"answers": [{"id_question": 1, "id_select": 5}, ...]}``. Unknown items and values
    outside the response scale raise `InputError` naming the file and the item.
    """
    path = Path(path)
    data = _read_mapping(path)
    if isinstance(data, Mapping) and isinstance(data.get("answers"), list):
        pairs: list[tuple[Any, Any]] = []
        for k, row in enumerate(data["answers"]):
            if not isinstance(row, Mapping) or "id_question" not in row:
                raise InputError(f"{path}: answers[{k}] needs id_question and id_select")
            pairs.append((row["id_question"], row.get("id_select")))
    elif isinstance(data, Mapping):
        pairs = list(data.items())
    else:
        raise InputError(f"{path}: expected a mapping of item id to answer")
    try:
        return check_answers(questionnaire, dict(pairs))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def check_answers(
    questionnaire: Questionnaire, answers: Mapping[Any, Any]
) -> dict[str, float | None]:
    """Answers keyed by item id (as text), each a number on the response scale or None.

    >>> q = load_questionnaire("ipip-120")
    >>> check_answers(q, {1: 5, "2": None})
    {'1': 5.0, '2': None}
    >>> check_answers(q, {3: 7})
    Traceback (most recent call last):
    ...
    personae.errors.InputError: item '3': answer 7 is outside the response scale 1..5
    """
    known = questionnaire._items_by_id()
    out: dict[str, float | None] = {}
    lo, hi = questionnaire.low, questionnaire.high
    for key, value in answers.items():
        item_id = str(key)
        if item_id not in known:
            raise InputError(f"item {item_id!r}: not in questionnaire {questionnaire.name}")
        if value is None:
            out[item_id] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"item {item_id!r}: answer {value!r} is not a number")
        if not lo <= value <= hi:  # also rejects NaN
            raise InputError(
                f"item {item_id!r}: answer {value!r} is outside the response scale {lo}..{hi}"
            )
        out[item_id] = float(value)
    return out
