"""A real ``python -m llama_cpp.server`` serving the bundled GGUF on loopback, started once
for the integration tests and stopped after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from personae.testing.llama_server import LlamaServer


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with LlamaServer(tmp_path_factory.mktemp("server") / "server.log") as server:
        yield server.base_url, server.log


def chat_requests(log: Path) -> int:
    return log.read_text().count("POST /v1/chat/completions")
