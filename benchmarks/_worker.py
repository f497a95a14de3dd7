"""Running one benchmark measurement in a fresh Python process (shared by the benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_worker(script: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``script --worker NAME --worker-args JSON``; its result is the last JSON line it
    prints. The checkout's ``src`` goes first on the path, and local models stay offline."""
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", name,
           "--worker-args", json.dumps(kwargs)]
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    if (ROOT / "src" / "personae").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker {name} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(lines[-1])
