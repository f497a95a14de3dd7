"""What the settings of every resumable command share (eval, survey, simulate): which of them
identify a stored run, and where the run lives when no ``--out`` is given."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from personae.errors import InputError, describe_validation

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
    FILES: ClassVar[tuple[str, ...]] = ()  # settings that may name a file

    @classmethod
    def from_given(cls, given: Mapping[str, Any]) -> Self:
        """Settings from what the user gave (None: not given). A setting in ``FILES`` that
        names a file is kept as its absolute path, so the run resumes (and ``report`` and
        ``rescore`` work) from any directory; bad settings are one `InputError`."""
        values = {k: v for k, v in given.items() if v is not None}
        for key in cls.FILES:
            value = values.get(key)
            if isinstance(value, str) and ":" not in value and Path(value).is_file():
                values[key] = str(Path(value).resolve())
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InputError(describe_validation(exc, whole=f"{cls.KIND} settings")) from None

    def identity(self, **digests: str) -> dict[str, Any]:
        """The settings a stored run must share with this one to be resumed by it, plus
        ``digests`` of what the settings only name (files' contents, model identities)."""
        return {**self.model_dump(exclude=set(self.EXTENDS | self.SPEED)), **digests}

    def digest(self, identity: Mapping[str, Any] | None = None) -> str:
        """A short hash of every setting but the speed ones, plus ``identity`` (the digests
        of file contents and model identities), so a changed setting or file hashes anew.

        >>> a = RunSettings()
        >>> a.digest() == a.digest({}) != a.digest({"personas_digest": "x"})
        True
        """
        blob = json.dumps({**self.model_dump(exclude=set(self.SPEED)), **(identity or {})},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def default_run_dir(self, identity: Mapping[str, Any] | None = None) -> Path:
        """``personae-runs/<kind>-<digest>``: the digest covers the settings and the run's
        `identity` (persona, script and model contents), so editing a persona file and
        re-running the same command starts a run of its own instead of being refused."""
        return RUNS_DIR / f"{self.KIND}-{self.digest(identity)}"
