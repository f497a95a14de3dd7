"""What the settings of every resumable command share (eval, survey, simulate): which of them
identify a stored run, and where the run lives when no ``--out`` is given."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

RUNS_DIR = Path("personae-runs")


class RunSettings(BaseModel):
    """Base of a command's settings.

    A stored run is identified by every setting except those that only say how much of it to
    do now (``EXTENDS``: a larger ``limit`` extends a run) or how fast (``SPEED``). The default
    run directory is named by a digest of the settings, so the same command finds its run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    KIND: ClassVar[str] = "run"
    EXTENDS: ClassVar[frozenset[str]] = frozenset({"limit"})
    SPEED: ClassVar[frozenset[str]] = frozenset({"concurrency", "progress"})

    def identity(self, **digests: str) -> dict[str, Any]:
        """The settings a stored run must share with this one to be resumed by it, plus
        ``digests`` of what the settings only name (files' contents, model identities)."""
        return {**self.model_dump(exclude=set(self.EXTENDS | self.SPEED)), **digests}

    def digest(self) -> str:
        blob = json.dumps(self.model_dump(exclude=set(self.SPEED)), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def default_run_dir(self) -> Path:
        """``personae-runs/<kind>-<settings digest>``."""
        return RUNS_DIR / f"{self.KIND}-{self.digest()}"
