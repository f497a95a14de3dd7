"""The package layers of DESIGN §3, enforced: a module imports only from its own layer or
below, run kinds never import each other, and no two packages import each other.

Imports are read with `ast` from every module (lazy imports inside functions included), so a
function-level import cannot dodge the rule. ``KNOWN`` lists the edges that still break it
(issue 11 removes them): a new breach fails, and so does a listed edge that no longer exists,
so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "personae"
LAYER = {"errors": 1, "_files": 1, "persona": 2, "stats": 2, "vectors": 2, "models": 3,
         "runtime": 4, "judge": 5, "instruments": 5, "chat": 5, "evals": 6, "survey": 6,
         "sim": 6, "steer": 6, "generate": 6, "audit": 6, "report": 7, "cli": 8, "serve": 8,
         "testing": 8}
RUN_KINDS = {name for name, layer in LAYER.items() if layer == 6}
KNOWN = {("evals", "report"), ("survey", "report"), ("sim", "report"), ("steer", "report")}


def package_imports(src: Path = SRC) -> dict[tuple[str, str], str]:
    """(importing package, imported package) -> the first ``file:line`` where it happens."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(src.rglob("*.py")):
        me = path.relative_to(src).with_suffix("").parts[0]
        if me not in LAYER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "personae" and len(parts) > 1 and parts[1] in LAYER \
                        and parts[1] != me:
                    edges.setdefault((me, parts[1]), f"{path.relative_to(src)}:{node.lineno}")
    return edges


def breaches(edges: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Upward imports, imports between run kinds, and both directions of every cycle."""
    return {(a, b): where for (a, b), where in edges.items()
            if LAYER[b] > LAYER[a] or (a in RUN_KINDS and b in RUN_KINDS) or (b, a) in edges}


def test_no_new_import_breaks_the_layers() -> None:
    found = breaches(package_imports())
    new = {edge: where for edge, where in found.items() if edge not in KNOWN}
    assert not new, "imports against the layers of DESIGN §3: " + ", ".join(
        f"{a} -> {b} at {where}" for (a, b), where in sorted(new.items()))


def test_the_known_breaches_are_still_there() -> None:
    gone = KNOWN - set(breaches(package_imports()))
    assert not gone, f"fixed, so remove from KNOWN: {sorted(gone)}"


def test_the_check_catches_each_kind_of_breach(tmp_path: Path) -> None:
    files = {"models/a.py": "def f():\n    from personae.steer import x\n",   # upward, lazy
             "steer/b.py": "import personae.models.hf\n",
             "sim/c.py": "from personae.evals.run import y\n",               # run kinds
             "persona/d.py": "from personae.stats import z\n",               # same layer
             "stats/e.py": "from personae.persona import w\n"}               # a cycle
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert set(breaches(package_imports(tmp_path))) == {
        ("models", "steer"), ("steer", "models"), ("sim", "evals"), ("persona", "stats"),
        ("stats", "persona")}
