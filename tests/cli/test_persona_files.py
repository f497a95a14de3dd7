"""Persona files as people write them, through the ``personae`` command: a flat YAML or JSON
persona validates, chats, answers a survey and holds a conversation; an unknown key gets a
"did you mean" line; character cards convert both ways. Runs in-process (fast)."""

from __future__ import annotations

import base64
import json
from io import BytesIO
from pathlib import Path

import pytest
import yaml
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from personae.cli.main import main
from personae.persona import load_personas

INGRID = """\
name: Ingrid Solberg
age: 67
occupation: retired lighthouse keeper
location: a small island off the coast of Norway
summary: A taciturn former lighthouse keeper who kept the light for 31 years.
facts: [I kept the Skomvaer light for 31 years., I still wake at four every morning.]
traits: {openness: 2, conscientiousness: 5, extraversion: 1, agreeableness: 3, neuroticism: 2}
"""
MODEL = """\
rules:
  - {match: "(?i)who are you", reply: "Ingrid. I kept the light."}
choices: {"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2}
replies: ["The sea is loud today.", "Four in the morning, always."]
"""
CARDS = Path(__file__).parent.parent / "fixtures" / "cards"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "ingrid.yaml").write_text(INGRID)
    (tmp_path / "ingrid.json").write_text(json.dumps(yaml.safe_load(INGRID)))
    (tmp_path / "model.yaml").write_text(MODEL)
    return {"yaml": tmp_path / "ingrid.yaml", "json": tmp_path / "ingrid.json",
            "model": tmp_path / "model.yaml"}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_flat_persona_validates_and_renders(files: dict[str, Path], kind: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "personas", "validate", str(files[kind]))
    assert (code, err) == (0, "") and out == f"{files[kind]}: 1 persona OK\n"
    code, out, _ = cli(capsys, "personas", "render", str(files[kind]))
    assert code == 0
    for line in ("- Age: 67", "- Lives in: a small island off the coast of Norway",
                 "- Occupation: retired lighthouse keeper", "- Extraversion: 1"):
        assert line in out, line


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_flat_persona_chats(files: dict[str, Path], kind: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "chat", "-m", f"scripted:{files['model']}", "-p",
                         str(files[kind]), "Who", "are", "you?")
    assert code == 0, err
    assert out == "Ingrid. I kept the light.\n"


def test_flat_persona_takes_a_survey(files: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "survey"
    code, out, err = cli(capsys, "survey", "-m", f"scripted:{files['model']}", "-p",
                         str(files["yaml"]), "--items", "4", "--out", str(run))
    assert code == 0, err
    assert out.strip() == str(run / "report.html")
    assert "Ingrid" in err and "Declared vs measured" in err and "4 model calls" in err


def test_flat_persona_holds_a_conversation(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "sim"
    code, out, err = cli(capsys, "simulate", "-m", f"scripted:{files['model']}", "-p",
                         str(files["json"]), "--turns", "2", "--judge", "none", "--metrics",
                         "leak", "--out", str(run))
    assert code == 0, err
    assert out.strip() == str(run / "report.html")
    assert "Ingrid Solberg:" in err and "2 turns in 1 conversations" in err
    rows = [json.loads(line) for line in (run / "transcripts.jsonl").read_text().splitlines()]
    assert "ingrid-solberg" in rows[0]["persona_ids"]


@pytest.mark.parametrize(("args", "needle"), [
    (["personas", "validate"], "unknown field 'trait'; did you mean 'traits'?"),
    (["chat", "-m", "scripted:{model}", "-p"], "unknown field 'trait'; did you mean 'traits'?"),
])
def test_unknown_key_is_one_line_with_a_guess(files: dict[str, Path], args: list[str],
                                              needle: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = files["yaml"].with_name("bad.yaml")
    bad.write_text(INGRID.replace("traits:", "trait:"))
    args = [a.format(model=files["model"]) for a in args] + [str(bad)]
    code, out, err = cli(capsys, *args, *(["hi"] if args[0] == "chat" else []))
    assert code == 2 and out == ""
    assert err == f"personae: error: {bad}:1: persona 'Ingrid Solberg': {needle}\n"


def test_conflicting_flat_and_nested_key(files: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = files["yaml"].with_name("both.yaml")
    bad.write_text(INGRID + "demographics: {age: 76}\n")
    code, _, err = cli(capsys, "personas", "validate", str(bad))
    assert code == 2
    assert "'age' (67) conflicts with demographics.age (76)" in err
    assert len(err.splitlines()) == 1


def test_validate_help_lists_the_accepted_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "personas", "validate", "--help")
    text = " ".join(out.split())
    assert code == 0
    for name in ("summary", "facts", "demographics", "traits", "knowledge_limits", "extra",
                 "age", "gender (sex)", "occupation (job, profession)", "location (residence)",
                 "city", "country", "nationality", "ethnicity", "education",
                 "languages (language)", ".parquet", ".png"):
        assert name in text, name


def test_convert_flat_to_nested(files: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "nested.yaml"
    code, _, err = cli(capsys, "personas", "convert", str(files["yaml"]), str(out_path))
    assert code == 0 and err == f"wrote 1 persona to {out_path}\n"
    (row,) = yaml.safe_load(out_path.read_text())
    assert row["demographics"]["age"] == 67 and "age" not in row and "source" not in row


def _png(card_path: Path, chunk: str, target: Path) -> Path:
    info = PngInfo()
    info.add_text(chunk, base64.b64encode(card_path.read_bytes()).decode())
    buf = BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG", pnginfo=info)
    target.write_bytes(buf.getvalue())
    return target


@pytest.mark.parametrize(("card", "chunk"), [("liora.v2.json", "chara"),
                                             ("aria.v3.json", "ccv3")])
def test_cards_convert_to_personae_and_back(card: str, chunk: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    original = json.loads((CARDS / card).read_text())
    png = _png(CARDS / card, chunk, tmp_path / "card.png")
    for source in (CARDS / card, png):
        code, out, err = cli(capsys, "personas", "validate", str(source))
        assert code == 0 and out.startswith(f"{source}: 1 persona OK"), err
        yaml_path = tmp_path / "p.yaml"
        assert cli(capsys, "personas", "convert", str(source), str(yaml_path))[0] == 0
        back = tmp_path / "back.card.json"
        code, _, err = cli(capsys, "personas", "convert", str(yaml_path), str(back))
        assert code == 0 and "as a character card (V2)" in err
        written = json.loads(back.read_text())
        assert written["spec"] == "chara_card_v2"
        for key, value in original["data"].items():  # every field of the card's data
            assert written["data"][key] == value, key
    if card.startswith("liora"):
        assert written["data"] == original["data"]


def test_convert_to_a_card_needs_one_persona(files: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "personas", "convert", "sample", str(tmp_path / "x.card.json"))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "holds 20 personas and a character card holds one; choose it with --persona-id" \
        in err
    target = tmp_path / "rosa.json"
    code, _, err = cli(capsys, "personas", "convert", "sample", str(target), "--to", "card",
                       "--persona-id", "rosa-cusco-weaver")
    assert code == 0, err
    data = json.loads(target.read_text())["data"]
    assert data["name"] == "Rosa Quispe Mamani" and "alpaca" in data["description"]
    (again,) = load_personas(target)
    assert again.name == "Rosa Quispe Mamani" and again.source.format == "chara_card_v2"
    assert again.extra["card"]["extensions"]["personae"]["id"] == "rosa-cusco-weaver"
