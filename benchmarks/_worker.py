"""What the benchmarks share: one measurement in a fresh Python process, and a loopback
server in a child process of its own (a server thread would share the client's GIL, and its
CPU would be counted as the client's)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """A child process's environment: the checkout's ``src`` first on the path, local models
    offline, plus ``extra``."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    if (ROOT / "src" / "personae").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_worker(script: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``script --worker NAME --worker-args JSON``; its result is the last JSON line it
    prints."""
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", name,
           "--worker-args", json.dumps(kwargs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker {name} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def serve_forever(server: Any) -> None:
    """The child's side of `ChildServer`: start ``server`` (a ``LoopbackServer``), say where
    it listens, and serve until killed."""
    async def main() -> None:
        await server.start()
        print(f"listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class ChildServer:
    """``python ARGV...`` in a child process that prints ``listening on URL`` once it is up;
    ``base_url`` is that URL."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, *self.argv], stdout=subprocess.PIPE,
                                     env=child_env(), text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.__exit__()
            raise RuntimeError(f"the loopback server did not start (said {line!r})")
        self.base_url = line.split("listening on", 1)[1].strip()
        return self

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (Linux only; 0 elsewhere)."""
        try:
            assert self.proc is not None
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AssertionError, IndexError, ValueError):
            return 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None


def environment(*packages: str) -> dict[str, Any]:
    """The machine and the versions of ``packages`` (None when one is missing), and the
    load average as the run starts: the machines are shared, so a number needs its context."""
    import platform

    env: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform(), "processor": platform.processor()}
    for name in packages:
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional backend is recorded as such
            env[name] = None
    try:
        env["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return env


def finish(out: Path, results: dict[str, Any], started: float,
           print_table: Callable[[dict[str, Any]], None]) -> int:
    """Record the total time and the closing load average, write ``out``, print the table."""
    import time

    results["total_wall_s"] = round(time.perf_counter() - started, 1)
    try:  # includes this run's own load (about 2 on 2 cores); more means something else ran
        results["environment"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {out} ({results['total_wall_s']:.0f} s)")
    return 0
