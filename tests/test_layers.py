"""The package layers and rules of DESIGN §3, enforced: a module imports only from its own
layer or below, run kinds never import each other, no two packages import each other, no
``_private`` name is imported from another module, and nothing below the faces prints.

Imports are read with `ast` from every module (lazy imports inside functions included), so a
function-level import cannot dodge the rule.
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
# Below the faces, text reaches the user only through these: the run's display and progress.
MAY_PRINT = {"runtime/spine.py", "runtime/progress.py"}


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


def test_no_import_breaks_the_layers() -> None:
    found = breaches(package_imports())
    assert not found, "imports against the layers of DESIGN §3: " + ", ".join(
        f"{a} -> {b} at {where}" for (a, b), where in sorted(found.items()))


def _trees(src: Path = SRC) -> list[tuple[str, ast.AST]]:
    return [(str(p.relative_to(src)), ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(src.rglob("*.py"))]


def test_no_private_name_is_imported_from_another_module() -> None:
    found = [f"{name}:{node.lineno} imports {a.name} from {node.module}"
             for name, tree in _trees() for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("personae")
             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found


def test_nothing_below_the_faces_prints() -> None:
    found = [f"{name}:{node.lineno}" for name, tree in _trees()
             if LAYER.get(name.split("/")[0], 0) < LAYER["cli"] and name not in MAY_PRINT
             for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "print"]
    assert not found, f"print below the command line (use the run's Display): {found}"


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
