"""Character cards V1/V2/V3, as JSON and embedded in PNG text chunks: every field is mapped
or kept, V2 export gives the card back, and bad files are one-line errors."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from personae.errors import InputError
from personae.persona import Persona, load_personas, render_system_prompt, save_personas
from personae.persona.cards import MAPPED, parse_card_png, to_card_v2

CARDS = Path(__file__).parent.parent / "fixtures" / "cards"
V2 = CARDS / "liora.v2.json"
V3 = CARDS / "aria.v3.json"
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def card(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def png_bytes(chunks: dict[str, str], *, itxt: bool = False, size: tuple[int, int] = (4, 4),
              after_idat: bool = False) -> bytes:
    """A small PNG with the given text chunks, written by Pillow; ``after_idat`` moves them
    to just before IEND, where SillyTavern writes them."""
    from io import BytesIO

    info = PngInfo()
    for key, value in chunks.items():
        if after_idat:
            continue
        if itxt:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    out = BytesIO()
    Image.new("RGB", size, "white").save(out, format="PNG", pnginfo=info)
    blob = out.getvalue()
    if after_idat:
        iend = blob.rindex(b"IEND") - 4
        extra = b"".join(raw_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1"))
                         for k, v in chunks.items())
        blob = blob[:iend] + extra + blob[iend:]
    return blob


def raw_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def assert_all_kept(persona: Persona, original: dict[str, Any]) -> None:
    """Every field of the card's data is mapped onto the persona or kept in extra.card."""
    data = original.get("data", original)
    kept = persona.extra["card"]
    mapped = {"name": persona.name, "description": persona.summary,
              "personality": persona.style}
    for key, value in data.items():
        if key in MAPPED:
            assert mapped[key] == (value or None), key
            assert key not in kept
        else:
            assert kept[key] == value, key


def test_v2_json_card() -> None:
    (p,) = load_personas(V2)
    original = card(V2)
    assert (p.id, p.name, p.source.format, p.source.spec_version) == (
        "liora", "Liora", "chara_card_v2", "2.0")
    assert p.summary == original["data"]["description"]
    assert p.style == original["data"]["personality"]
    assert_all_kept(p, original)
    # The top-level V1 copies equal to data are named only; the rest of the top level is kept.
    assert p.extra["card_outer"] == {"creatorcomment": "A gentle healer for first chats.",
                                     "avatar": "none", "talkativeness": "0.5", "fav": False,
                                     "create_date": "2023-05-11 @17h 41m 33s 431ms"}
    assert p.extra["card_v1_copies"] == ["name", "description", "personality", "scenario",
                                         "first_mes", "mes_example"]
    # Out again: the whole card, top level included, and the copies follow an edited field.
    assert to_card_v2(p) == original
    edited = to_card_v2(p.model_copy(update={"summary": "A healer, retired."}))
    assert edited["description"] == edited["data"]["description"] == "A healer, retired."


def test_v3_json_card() -> None:
    (p,) = load_personas(V3)
    assert (p.name, p.source.format, p.source.spec_version) == ("Aria Vance", "chara_card_v3",
                                                                "3.0")
    assert_all_kept(p, card(V3))
    assert p.extra["card"]["assets"][0]["uri"] == "ccdefault:"
    assert "card_outer" not in p.extra


def test_v1_card() -> None:
    v1 = {"name": "Old", "description": "An old-style card.", "personality": "",
          "scenario": "", "first_mes": "Hi {{user}}.", "mes_example": ""}
    fields = to_card_v2(Persona(**_load_fields(v1)))
    assert fields["data"]["first_mes"] == "Hi {{user}}." and fields["data"]["personality"] == ""


def _load_fields(record: dict[str, Any]) -> dict[str, Any]:
    from personae.persona.importers import IMPORTERS, detect_format

    fmt = detect_format(record)
    assert fmt == "chara_card_v1"
    return IMPORTERS[fmt](record)


@pytest.mark.parametrize(("itxt", "after_idat"), [(False, False), (True, False),
                                                  (False, True)])
def test_png_cards_of_both_kinds(tmp_path: Path, itxt: bool, after_idat: bool) -> None:
    v2, v3 = card(V2), card(V3)
    both = write(tmp_path, "both.png", png_bytes({"chara": b64(v2), "ccv3": b64(v3)},
                                                 itxt=itxt, after_idat=after_idat))
    only_v2 = write(tmp_path, "v2.png", png_bytes({"chara": b64(v2)}, itxt=itxt,
                                                  after_idat=after_idat))
    (p3,) = load_personas(both)  # ccv3 wins over chara
    (p2,) = load_personas(only_v2)
    def strip(p: Persona) -> dict[str, Any]:
        return p.model_dump(exclude={"source"})

    assert strip(p3) == strip(load_personas(V3)[0]) and p3.source.format == "chara_card_v3"
    assert strip(p2) == strip(load_personas(V2)[0]) and p2.source.format == "chara_card_v2"
    assert p2.source.path == str(only_v2)


def test_raw_json_in_a_chunk_is_read_too(tmp_path: Path) -> None:
    text = json.dumps(card(V3), ensure_ascii=False)
    (p,) = load_personas(write(tmp_path, "raw.png", png_bytes({"chara": text}, itxt=True)))
    assert p.name == "Aria Vance"


@pytest.mark.parametrize("path", [V2, V3])
def test_v2_export_keeps_every_field_of_the_data(path: Path, tmp_path: Path) -> None:
    original = card(path)
    (p,) = load_personas(path)
    out = to_card_v2(p)
    assert out["spec"] == "chara_card_v2" and out["spec_version"] == "2.0"
    for key, value in original["data"].items():
        assert out["data"][key] == value, key
    if path == V2:
        assert out == original  # the top level too, the V1 copies of data fields included
    # The card survives a trip through every personae file format, too.
    for suffix in (".yaml", ".json", ".jsonl", ".parquet"):
        save_personas([p], tmp_path / f"p{suffix}")
        (back,) = load_personas(tmp_path / f"p{suffix}")
        assert to_card_v2(back) == out, suffix
    save_personas([p], tmp_path / "again.card.json")
    assert json.loads((tmp_path / "again.card.json").read_text()) == out


def test_macros_stay_literal_text() -> None:
    (p,) = load_personas(V2)
    prompt = render_system_prompt(p, "card")
    assert "{{char}} is a guardian of Vellwood's forest" in prompt
    assert "{{user}}" in p.extra["card"]["scenario"]


def test_a_native_persona_as_a_card() -> None:
    p = Persona(name="Ingrid", summary="A lighthouse keeper.", age=67, facts=["I wake at 4."],
                traits={"extraversion": 1}, extra={"hobby": "knots"})
    data = to_card_v2(p)["data"]
    assert data["description"].startswith("A lighthouse keeper.\n\nAge: 67\n\nI wake at 4.")
    assert "extraversion 1" in data["description"]
    assert data["extensions"]["personae"] == {
        "id": "ingrid", "facts": ["I wake at 4."], "demographics": {"age": 67},
        "traits": {"extraversion": 1.0}, "extra": {"hobby": "knots"}}
    assert data["first_mes"] == "" and data["tags"] == [] and "character_book" not in data


def _ihdr_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + raw_chunk(b"IHDR", ihdr)
            + raw_chunk(b"tEXt", b"chara\0" + b64({"name": "x"}).encode())
            + raw_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + raw_chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "content", "needles"), [
    ("plain.png", png_bytes({"Title": "hi"}), ["no character card"]),
    ("b64.png", png_bytes({"chara": "not*base64!"}), ["chunk 'chara'", "not base64"]),
    ("json.png", png_bytes({"chara": base64.b64encode(b"{oops").decode()}),
     ["chunk 'chara'", "invalid JSON"]),
    ("list.png", png_bytes({"ccv3": b64([1, 2])}), ["chunk 'ccv3'", "got list"]),
    ("utf.png", png_bytes({"chara": base64.b64encode(b'{"a": "\xff"}').decode()}),
     ["not UTF-8"]),
    ("notpng.png", b"GIF89a" + b"\0" * 40, ["not a PNG image"]),
    ("cut.png", png_bytes({"chara": b64({"name": "x"})}, after_idat=True)[:60],
     ["truncated PNG"]),
    ("big.png", _ihdr_png(8000, 8000), ["image of 8000x8000 pixels"]),
    ("bomb.png", _ihdr_png(30000, 30000), ["image too large to read", "900000000 pixels"]),
    ("field.png", png_bytes({"chara": b64({"spec": "chara_card_v2", "data": {"name": 7}})}),
     ["chunk 'chara'", "data.name: expected text, got int"]),
    ("spec.json", json.dumps({"spec": "chara_card_v9", "data": {}}),
     ["spec: unsupported character card spec 'chara_card_v9'"]),
    ("data.json", json.dumps({"spec": "chara_card_v2", "data": "x"}), ["data: expected an"]),
    ("tags.json", json.dumps({"spec": "chara_card_v3", "data": {"name": "A", "tags": "x"}}),
     ["data.tags: expected a list of strings"]),
    ("empty.json", json.dumps({"spec": "chara_card_v2", "data": {"name": ""}}),
     ["at least one of"]),
])
def test_bad_cards_are_one_line_errors(tmp_path: Path, name: str, content: bytes | str,
                                       needles: list[str]) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as exc:
        load_personas(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    assert msg.count(str(path)) == 1, msg  # one error, not one wrapped in another
    for n in needles:
        assert n in msg, (n, msg)


def test_huge_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    from personae.persona import cards

    monkeypatch.setattr(cards, "MAX_PNG_BYTES", 100)
    path = write(tmp_path, "big.png", png_bytes({"chara": b64(card(V2))}))
    with pytest.raises(InputError, match=r"big\.png: PNG of 0 MiB; character cards are read"):
        load_personas(path)


def _png_or_input_error(path: Path) -> None:
    try:
        load_personas(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_as_png(tmp_path: Path, data: bytes) -> None:
    _png_or_input_error(write(tmp_path, "fuzz.png", b"\x89PNG\r\n\x1a\n" + data))
    _png_or_input_error(write(tmp_path, "fuzz2.png", data))


VALID_PNG = png_bytes({"chara": b64(card(V2))})
VALID_LATE = png_bytes({"ccv3": b64(card(V3))}, after_idat=True)


@FUZZ
@given(cut=st.integers(0, len(VALID_PNG)), late=st.booleans(), flip=st.integers(0, 255),
       at=st.integers(0, len(VALID_PNG) - 1))
def test_fuzz_truncated_and_damaged_pngs(tmp_path: Path, cut: int, late: bool, flip: int,
                                         at: int) -> None:
    blob = VALID_LATE if late else VALID_PNG
    _png_or_input_error(write(tmp_path, "cut.png", blob[:cut]))
    damaged = bytearray(blob)
    damaged[at % len(blob)] ^= flip
    _png_or_input_error(write(tmp_path, "flip.png", bytes(damaged)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)
card_data = st.dictionaries(st.sampled_from([*MAPPED, "scenario", "first_mes", "tags",
                                             "extensions", "character_book", "nickname",
                                             "alternate_greetings"]) | st.text(max_size=6),
                            json_values, max_size=6)
cards = st.fixed_dictionaries({"spec": st.sampled_from(["chara_card_v2", "chara_card_v3"])},
                              optional={"data": card_data | json_values,
                                        "spec_version": json_values})


@FUZZ
@given(text=st.text(max_size=80) | st.binary(max_size=60).map(
    lambda b: base64.b64encode(b).decode()) | json_values.map(b64) | cards.map(b64),
    key=st.sampled_from(["chara", "ccv3", "Chara"]), itxt=st.booleans())
def test_fuzz_chunk_contents(tmp_path: Path, text: str, key: str, itxt: bool) -> None:
    try:
        blob = png_bytes({key: text}, itxt=itxt)
    except (UnicodeEncodeError, ValueError):  # tEXt is Latin-1: not every text can be written
        return
    _png_or_input_error(write(tmp_path, "chunk.png", blob))


@FUZZ
@given(record=cards | card_data.map(lambda d: d | {"first_mes": "hi"}))
def test_fuzz_card_json(tmp_path: Path, record: dict[str, Any]) -> None:
    path = write(tmp_path, "card.json", json.dumps(record))
    try:
        (p,) = load_personas(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    data = record.get("data", record)
    out = to_card_v2(p)["data"]
    for key, value in data.items():  # whatever was read is written back
        assert out[key] == (value if value is not None or key not in MAPPED else ""), key


def test_parse_card_png_in_memory() -> None:
    chunk, parsed = parse_card_png(png_bytes({"chara": b64(card(V2))}))
    assert chunk == "chara" and parsed == card(V2)
