"""`personae eval --fail-under / --baseline / --max-drop`: the quality gate a user's CI runs,
against real OpenAI-compatible servers on loopback (a subject that plays its persona or not,
a judge that grades what it is shown)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from personae.testing.loopback import LoopbackServer
from tests.conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.server


def _sloppy(request: dict) -> str:
    """Gives a score to one request in three, and rambles otherwise."""
    digest = hashlib.sha256(json.dumps(request["messages"]).encode()).digest()
    return "Therefore, the final score is 5." if digest[0] % 3 == 0 else "Hmm, hard to say."


@pytest.fixture(scope="module")
def servers(bots: dict[str, str]) -> Iterator[dict[str, str]]:
    # A judge that leaves most rubrics without a score fails the parse-rate check.
    with LoopbackServer(reply_fn=_sloppy, keep_bodies=False) as sloppy:
        yield {**bots, "sloppy": f"openai:sloppy@{sloppy.base_url}"}


def gated(model: str, judge: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--personas", "personagym", "--limit", "3", "--per-task", "2",
            "--tasks", "Expected Action,Linguistic Habits", "--suite", "fidelity",
            "--reliability-sample", "0", "--model", model, "--judge", judge,
            "--out", str(out), *extra]


def gate_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("gate: ")]


def test_gate_passes_a_good_model_and_fails_a_planted_regression(
        servers: dict[str, str], tmp_path: Path) -> None:
    main = tmp_path / "main"
    proc = run_cli(*gated(servers["good"], servers["judge"], main,
                          "--fail-under", "fidelity=3.5"))
    assert proc.returncode == 0, proc.stderr
    lines = gate_lines(proc.stderr)
    assert lines[0].startswith("gate: ok     fidelity 4.") and lines[0].endswith("≥ 3.5 (12 probes)")
    assert any("reliability checks that could run" in line for line in lines)

    # The same model sampled with another seed: new responses, new judge noise, no alarm.
    proc = run_cli(*gated(servers["good"], servers["judge"], tmp_path / "again",
                          "--seed", "7", "--baseline", str(main), "--max-drop",
                          "fidelity=0.3"))
    assert proc.returncode == 0, proc.stderr
    assert any("fidelity" in line and "vs baseline (max 0.3; 12 probes)" in line
               for line in gate_lines(proc.stderr))

    # A degraded model: below the floor, and a drop beyond noise and beyond the allowed one.
    proc = run_cli(*gated(servers["bad"], servers["judge"], tmp_path / "pr",
                          "--fail-under", "fidelity=3.5", "--baseline", str(main),
                          "--max-drop", "fidelity=0.3"))
    assert proc.returncode == 3, proc.stderr
    failed = [line for line in gate_lines(proc.stderr) if line.startswith("gate: FAILED")]
    assert len(failed) == 2, proc.stderr
    assert failed[0].startswith("gate: FAILED fidelity 2.") and failed[0].endswith("< 3.5 (12 probes)")
    assert failed[1].startswith("gate: FAILED fidelity dropped ")
    assert failed[1].endswith("vs baseline (max 0.3; 12 probes)")
    low = float(failed[1].split("[")[1].split(",")[0])
    assert low > 0.3  # the interval of a 2-point drop clears the allowed drop
    assert proc.stderr.strip().splitlines()[-1] == (
        "personae: error: quality gate failed (2 of 4 conditions)")

    # A baseline alone gates every measured metric with no drop allowed.
    proc = run_cli(*gated(servers["bad"], servers["judge"], tmp_path / "pr",
                          "--baseline", str(main)))
    assert proc.returncode == 3 and "(max 0; 12 probes)" in proc.stderr


def test_gate_never_passes_on_an_unreliable_judge(servers: dict[str, str],
                                                  tmp_path: Path) -> None:
    proc = run_cli(*gated(servers["good"], servers["sloppy"], tmp_path / "run",
                          "--fail-under", "fidelity=1"))
    assert proc.returncode == 3, proc.stderr
    failed = [line for line in gate_lines(proc.stderr) if line.startswith("gate: FAILED")]
    assert failed == [line for line in failed if "judge failed its reliability checks" in line]
    assert len(failed) == 1 and "parse rate" in failed[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["--max-drop", "fidelity=0.3"], "--max-drop needs --baseline RUN_DIR"),
    (["--fail-under", "fidelty=3"], "unknown metric 'fidelty'; did you mean 'fidelity'?"),
    (["--fail-under", "fidelity=high"], "fidelity='high' is not a number"),
    (["--fail-under", "acc_atom=0.5"], "add it with --suite fidelity,atomic"),
    (["--baseline", "no-such-run"], "no-such-run"),
])
def test_gate_settings_are_checked_before_any_model_runs(
        args: list[str], needle: str, servers: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(*gated(servers["good"], servers["judge"], tmp_path / "run", *args))
    assert_one_line_error(proc, 2, needle)
    assert not (tmp_path / "run").exists()
