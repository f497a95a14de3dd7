"""A real ``python -m llama_cpp.server`` on a free loopback port, for tests and benchmarks.

    with LlamaServer(tmp / "server.log") as srv:
        load_model(f"openai:smollm@{srv.base_url}")
        srv.chat_requests()   # POST /v1/chat/completions lines in its access log
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personae.models.bundled import bundled_gguf_path


class LlamaServer:
    """Serves ``gguf`` (default: the bundled model) under ``alias``; stdout and stderr go to
    ``log``. Entering waits until ``/v1/models`` answers; leaving stops the process."""

    def __init__(self, log: Path, *, gguf: Path | None = None, alias: str = "smollm",
                 n_ctx: int = 2048, env: Mapping[str, str] | None = None,
                 start_timeout_s: float = 180) -> None:
        self.log, self.gguf, self.alias, self.n_ctx = log, gguf, alias, n_ctx
        self.env = dict(env) if env is not None else {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> LlamaServer:
        if self.gguf is None:
            self.gguf = bundled_gguf_path()
        with socket.socket() as s:  # a free port: the kernel picks, we release and reuse it
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "personae.testing.serve_llamacpp", "--model", str(self.gguf),
                 "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(port),
                 "--n_ctx", str(self.n_ctx)],
                stdout=fh, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited:\n"
                                   + self.log.read_text(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"llama_cpp.server did not start in "
                                   f"{self.start_timeout_s:.0f} s")
            time.sleep(0.5)

    def chat_requests(self) -> int:
        return self.log.read_text(errors="replace").count("POST /v1/chat/completions")

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """Terminate a child server, killing it if it has not gone in 20 s."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
