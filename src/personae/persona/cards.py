"""Character cards, the role-play community's persona format (SillyTavern, chub and others).

A card is JSON (Character Card V2 ``spec: chara_card_v2``, V3 ``chara_card_v3``, or the older
V1 with its fields at the top level), either on its own or base64-encoded in a PNG text chunk
(``chara`` for V2, ``ccv3`` for V3). On the way in:

- ``data.name`` becomes ``name``, ``data.description`` ``summary`` (a card's description is its
  dense definition of the character, which is what ``summary`` holds) and ``data.personality``
  ``style`` (the card template renders it as how the character comes across);
- every other field of ``data`` (scenario, first_mes, mes_example, system_prompt, tags,
  character_book, extensions, V3's assets...) is kept as it was under ``extra.card``, and
  keys beside ``spec``/``spec_version``/``data`` under ``extra.card_outer`` (the V1 copies of
  ``data`` fields that SillyTavern writes beside it are only named, in
  ``extra.card_v1_copies``), so nothing is dropped and `to_card_v2` writes the card back
  field for field.

Card text is data: ``{{char}}`` and ``{{user}}`` stay literal, no template ever renders them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngImageFile

from personae._files import atomic_write
from personae.errors import InputError
from personae.persona.schema import Persona

CARD_SPECS = {"chara_card_v2": "2.0", "chara_card_v3": "3.0"}
CARD_FORMATS = ("chara_card_v1", "chara_card_v2", "chara_card_v3")
# Where the three mapped card fields go in a Persona; the rest stays in extra.card.
MAPPED = {"name": "name", "description": "summary", "personality": "style"}
# The V2 spec's data fields in its order, with what a missing one is written as
# (character_book is optional: None means "leave it out").
V2_FIELDS: dict[str, Any] = {
    "name": "", "description": "", "personality": "", "scenario": "", "first_mes": "",
    "mes_example": "", "creator_notes": "", "system_prompt": "",
    "post_history_instructions": "", "alternate_greetings": [], "character_book": None,
    "tags": [], "creator": "", "character_version": "", "extensions": {},
}
_TEXT_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example",
                "creator_notes", "system_prompt", "post_history_instructions", "creator",
                "character_version", "nickname")
_TEXT_LISTS = ("alternate_greetings", "tags", "group_only_greetings")
_OBJECTS = ("extensions", "character_book", "creator_notes_multilingual")
# V1 cards have no spec: these keys at the top level say "card" (no persona format uses them).
_V1_KEYS = ("first_mes", "mes_example")
# PNG limits: card avatars are small; anything far bigger is a mistake or an attack.
MAX_PNG_BYTES = 50 * 2**20
MAX_PNG_PIXELS = 40_000_000
# The chunks a card may live in, most preferred first (a V3 card also keeps a V2 copy).
PNG_CHUNKS = ("ccv3", "chara")
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the chunk every whole PNG ends with


class CardError(ValueError):
    """A record is a character card with a field of the wrong shape (the message names it)."""


def card_format(record: Any) -> str | None:
    """The card format a parsed record is in, or None when it is no character card.

    >>> card_format({"spec": "chara_card_v2", "data": {"name": "Seraphina"}})
    'chara_card_v2'
    >>> card_format({"name": "Ana", "first_mes": "Hello!"})
    'chara_card_v1'
    >>> card_format({"name": "Ana"}) is None
    True
    """
    if not isinstance(record, dict):
        return None
    spec = record.get("spec")
    if isinstance(spec, str) and spec.startswith("chara_card"):
        if spec not in CARD_SPECS:
            raise CardError(f"spec: unsupported character card spec {spec!r} "
                            f"(supported: {', '.join(CARD_SPECS)})")
        return spec
    if "spec" not in record and any(k in record for k in _V1_KEYS):
        return "chara_card_v1"
    return None


def card_to_fields(record: Any) -> dict[str, Any]:
    """The `Persona` keyword arguments for a character card (V1, V2 or V3).

    >>> f = card_to_fields({"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    ...     "name": "Seraphina", "description": "A guardian of the forest.",
    ...     "first_mes": "*{{char}} smiles at {{user}}.*"}})
    >>> f["name"], f["summary"], f["extra"]["card"]["first_mes"]
    ('Seraphina', 'A guardian of the forest.', '*{{char}} smiles at {{user}}.*')
    """
    fmt = card_format(record)
    if fmt is None:
        raise CardError("not a character card (expected spec: chara_card_v2 or chara_card_v3, "
                        "or the V1 fields name, description, first_mes)")
    copies: list[str] = []
    if fmt == "chara_card_v1":
        data, outer, prefix = record, {}, ""
    else:
        data, prefix = record.get("data"), "data."
        if not isinstance(data, dict):
            raise CardError("data: expected an object holding the card's fields "
                            f"(got {type(data).__name__})")
        outer = {k: v for k, v in record.items() if k not in ("spec", "spec_version", "data")}
        # V1 copies of data fields (SillyTavern writes them for old readers) hold nothing of
        # their own: remember which there were, and write them again from data on export.
        copies = [k for k, v in outer.items() if k in data and data[k] == v]
        outer = {k: v for k, v in outer.items() if k not in copies}
    _check_types(data, prefix)
    fields: dict[str, Any] = {}
    for key, field in MAPPED.items():
        if data.get(key):  # "" is the spec's "not given"
            fields[field] = data[key]
    extra: dict[str, Any] = {"card": {k: v for k, v in data.items() if k not in MAPPED}}
    if outer:
        extra["card_outer"] = outer
    if fmt != "chara_card_v1" and copies:
        extra["card_v1_copies"] = copies
    fields["extra"] = extra
    source: dict[str, Any] = {"format": fmt}
    if "spec_version" in record and fmt != "chara_card_v1":
        source["spec_version"] = record["spec_version"]
    fields["source"] = source
    return fields


def _check_types(data: dict[str, Any], prefix: str) -> None:
    for key in _TEXT_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CardError(f"{prefix}{key}: expected text, got {type(data[key]).__name__}")
    for key in _TEXT_LISTS:
        value = data.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(x, str) for x in value)):
            raise CardError(f"{prefix}{key}: expected a list of strings")
    for key in _OBJECTS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise CardError(f"{prefix}{key}: expected an object, got "
                            f"{type(data[key]).__name__}")


def to_card_v2(persona: Persona) -> dict[str, Any]:
    """A Character Card V2 for ``persona``.

    A persona read from a card gets that card back, every field of its ``data`` as it was
    (a V3 card's own fields stay in ``data`` too). For any other persona the fields a card
    has no place for (demographics, facts, backstory, values, knowledge limits, traits) are
    written into the description as text, and kept as data under
    ``data.extensions.personae``.

    >>> card = to_card_v2(Persona(name="Ana", summary="A nurse.", style="Warm."))
    >>> card["spec"], card["data"]["description"], card["data"]["personality"]
    ('chara_card_v2', 'A nurse.', 'Warm.')
    """
    kept = persona.extra.get("card")
    kept = dict(kept) if isinstance(kept, dict) else {}
    mapped = {"name": persona.name or "", "description": _description(persona),
              "personality": persona.style or ""}
    data: dict[str, Any] = {}
    for key, default in V2_FIELDS.items():
        if key in mapped:
            data[key] = mapped[key]
        elif key in kept:
            data[key] = kept.pop(key)
        elif default is not None:
            data[key] = json.loads(json.dumps(default))  # a fresh [] or {}
    data.update((k, v) for k, v in kept.items() if k not in mapped)
    own = _personae_fields(persona)
    if own:
        extensions = data.get("extensions")
        data["extensions"] = (dict(extensions) if isinstance(extensions, dict) else {}) \
            | {"personae": own}
    outer = persona.extra.get("card_outer")
    card: dict[str, Any] = {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}
    if isinstance(outer, dict):
        card.update((k, v) for k, v in outer.items() if k not in card)
    copies = persona.extra.get("card_v1_copies")
    if isinstance(copies, list):  # from data as exported, so they never go stale
        card.update((k, data[k]) for k in copies if isinstance(k, str) and k in data)
    return card


def _personae_fields(persona: Persona) -> dict[str, Any]:
    """The persona's content a card has no field for (empty for a persona from a card)."""
    dump = persona.model_dump(mode="json", exclude_none=True, exclude_defaults=True,
                              include={"demographics", "facts", "traits", "backstory",
                                       "values", "knowledge_limits"})
    extra = {k: v for k, v in persona.extra.items()
             if k not in ("card", "card_outer", "card_v1_copies")}
    if extra:
        dump["extra"] = extra
    if dump:
        dump = {"id": persona.id} | dump
    return dump


def _description(persona: Persona) -> str:
    blocks = [persona.summary] if persona.summary else []
    demo = persona.demographics.model_dump(mode="json", exclude_none=True)
    lines = [f"{k.replace('_', ' ').capitalize()}: "
             + (", ".join(map(str, v)) if isinstance(v, list) else str(v))
             for k, v in demo.items() if v not in ([], "", {})]
    if lines:
        blocks.append("\n".join(lines))
    if persona.facts:
        blocks.append("\n".join(persona.facts))
    if persona.backstory:
        blocks.append(persona.backstory)
    if persona.values:
        blocks.append("Values: " + "; ".join(persona.values))
    if persona.knowledge_limits:
        blocks.append("Does not know: " + "; ".join(persona.knowledge_limits))
    if persona.traits and persona.traits.as_dict():
        blocks.append("Big Five (1-5): " + ", ".join(
            f"{k} {v:g}" for k, v in persona.traits.as_dict().items()))
    return "\n\n".join(blocks)


def save_card(persona: Persona, path: str | os.PathLike[str]) -> Path:
    """Write ``persona`` as a Character Card V2 JSON file (replaced atomically).

    Example::

        save_card(load_personas("seraphina.png")[0], "seraphina.card.json")
    """
    text = json.dumps(to_card_v2(persona), indent=2, ensure_ascii=False) + "\n"
    return atomic_write(path, text)


def read_card_png(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The card in a PNG file, as ``(chunk name, parsed JSON object)``; ``ccv3`` is preferred
    over ``chara`` when both are there. Raises `InputError` naming the file and chunk.

    Example::

        chunk, card = read_card_png("seraphina.png")  # ("chara", {"spec": ...})
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size > MAX_PNG_BYTES:
        raise InputError(f"{path}: PNG of {size / 2**20:.0f} MiB; character cards are read "
                         f"up to {MAX_PNG_BYTES // 2**20} MiB")
    return parse_card_png(path.read_bytes(), str(path))


def parse_card_png(blob: bytes, where: str = "card.png") -> tuple[str, dict[str, Any]]:
    """`read_card_png` for bytes in memory; ``where`` names them in errors.

    >>> parse_card_png(b"not a png")
    Traceback (most recent call last):
    ...
    personae.errors.InputError: card.png: not a PNG image
    """
    chunks = {k.lower(): v for k, v in _png_text(blob, where).items()}
    for name in PNG_CHUNKS:
        if name in chunks:
            return name, decode_card_chunk(chunks[name], f"{where}: chunk {name!r}")
    # Pillow stops quietly at a cut after the image data, where cards usually are: say so.
    if not blob.endswith(_IEND):
        raise InputError(f"{where}: truncated PNG (no IEND chunk at the end), and no "
                         "character card before the cut")
    raise InputError(f"{where}: no character card in this PNG (no 'ccv3' or 'chara' "
                     "text chunk)")


def _png_text(blob: bytes, where: str) -> dict[str, str]:
    if len(blob) > MAX_PNG_BYTES:
        raise InputError(f"{where}: PNG of {len(blob) / 2**20:.0f} MiB; character cards are "
                         f"read up to {MAX_PNG_BYTES // 2**20} MiB")
    # Text chunks after the image data are only read once the pixels are decoded: check the
    # size first, so a small file cannot make us inflate gigabytes (a decompression bomb).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob), formats=["PNG"]) as img:
                if not isinstance(img, PngImageFile):
                    raise InputError(f"{where}: not a PNG image")
                width, height = img.size
                if width * height > MAX_PNG_PIXELS:
                    raise InputError(f"{where}: image of {width}x{height} pixels; character "
                                     f"cards are read up to {MAX_PNG_PIXELS:,} pixels")
                return {str(k): str(v) for k, v in img.text.items()}
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{where}: not a PNG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{where}: image too large to read ({exc})") from None
    # Pillow reports a corrupt or truncated file with any of these, depending on where the
    # damage is; each is bad input, not a bug.
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
            IndexError, MemoryError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{where}: corrupt or truncated PNG ({first})") from None


def decode_card_chunk(value: str, where: str) -> dict[str, Any]:
    """The JSON object in a card's PNG text chunk: base64 (the standard) or, as a few tools
    write it, the JSON itself.

    >>> decode_card_chunk(base64.b64encode(b'{"name": "Ana"}').decode(), "x")
    {'name': 'Ana'}
    """
    raw = value.strip()
    if raw.startswith("{"):
        try:  # Pillow decodes tEXt as Latin-1; the bytes are UTF-8
            blob = raw.encode("latin-1")
        except UnicodeEncodeError:  # iTXt: already decoded as UTF-8
            blob = raw.encode("utf-8")
    else:
        compact = "".join(raw.split())
        compact += "=" * (-len(compact) % 4)  # some writers drop the padding
        try:
            blob = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(f"{where}: not base64-encoded JSON") from None
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON: {exc.msg} (line {exc.lineno}, "
                         f"column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    if not isinstance(card, dict):
        raise InputError(f"{where}: expected a JSON object (a character card), got "
                         f"{type(card).__name__}")
    return card
