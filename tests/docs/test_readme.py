"""Every Python block of the README runs, as written, so the README cannot drift from the
code. A block that loads a model is marked ``model`` (it still runs in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from personae.vectors.file import PersonaVector

README = Path(__file__).parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_LOADS_A_MODEL = re.compile(r"load_model\(|ChatSession\.open|hf:|bundled")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each fenced ``python`` block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def _params() -> list[object]:
    return [pytest.param(line, code, id=f"README.md:{line}",
                         marks=[pytest.mark.model] if _LOADS_A_MODEL.search(code) else [])
            for line, code in python_blocks(README.read_text(encoding="utf-8"))]


def test_the_readme_has_python_blocks() -> None:
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 3


def _given_files(code: str, where: Path) -> None:
    """Files a block takes as made by an earlier README command (``personae steer extract``
    writes ``extroverted.safetensors``): a vector of the bundled model's shape (30 blocks,
    hidden size 576) with residual norms, so the block runs as a reader would run it."""
    if "extroverted.safetensors" in code:
        rng = np.random.default_rng(0)
        PersonaVector.from_array(
            rng.standard_normal((30, 576)).astype(np.float32), trait="extroverted",
            model="hf:bundled", position="response_avg", method="mean_diff",
            residual_norms=[20.0] * 30).save(where / "extroverted.safetensors")


@pytest.mark.parametrize(("line", "code"), _params())
def test_readme_block_runs(line: int, code: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands in a scratch directory
    _given_files(code, tmp_path)
    # Padded so a traceback names the README's own line numbers.
    source = "\n" * (line - 1) + code
    exec(compile(source, str(README), "exec"), {"__name__": "__readme__"})


def test_blocks_are_found_with_their_line_numbers() -> None:
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = 2\n")]
