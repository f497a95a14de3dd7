"""The run spine: what every long-running job (an eval, a survey, a simulation, a steering
sweep...) does the same way.

A kind of run says what it computes (`RunKind`): its settings and their identity, an async
`execute` that writes each completed unit to the run store the moment it is done, and a
`summarise` that builds the summary from the store and the settings alone, with no model.
`run` is the one way any kind is run: the run directory, the store bound to the settings,
the response cache, the warnings, the event loop, then ``summary.json`` written once, under
the header every kind shares (`SummaryHeader`). `reopen` and `resummarise` work on a run
directory of any kind, finished or cut short, without loading a model.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from pydantic import BaseModel, ConfigDict, ValidationError

from personae import __version__
from personae._files import atomic_write
from personae.errors import InputError, describe_validation
from personae.runtime.cache import ResponseCache
from personae.runtime.settings import RunSettings
from personae.runtime.store import RunStore, open_store

SUMMARY_FILE = "summary.json"


class SummaryHeader(BaseModel):
    """The first keys of every ``summary.json``, whatever the kind of run.

    ``counts`` are the stored records by record kind; ``warnings`` everything the reader
    should know before trusting the numbers (failed calls, a tiny model, unparsable answers).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    schema_version: int
    run_dir: str
    created: str | None
    duration_s: float
    counts: dict[str, int]
    warnings: list[str]
    personae_version: str


@dataclass
class Outcome:
    """What one session of a run did: calls made, failures (retried by the next session)
    and lasting notes (true of the run whatever happens later, kept in the store)."""

    model_calls: int = 0
    cache_hits: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Display:
    """Where a run's messages go: the terminal's stderr, or nowhere when progress is off.

    The one way code below the command line talks to the user.

    >>> import io
    >>> out = io.StringIO()
    >>> Display(stream=out).warn("the model is tiny")
    >>> out.getvalue()
    'personae: warning: the model is tiny\\n'
    """

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self._stream or sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        self.say(f"personae: warning: {text}")


@dataclass
class RunContext:
    """What `RunKind.execute` works with."""

    store: RunStore
    cache: ResponseCache | None
    outcome: Outcome
    display: Display


class RunKind(ABC):
    """One kind of run. An instance is a run ready to execute: its input checked and its
    models loaded (everything that can be wrong with the input fails in ``__init__``,
    before a run directory is made or a model call spent).

    A subclass sets ``KIND``, ``SETTINGS``, ``settings`` and ``identity`` and implements
    `execute` and `summarise`.
    """

    KIND: ClassVar[str]
    # The layout of this kind's summary.json; 2: under the shared `SummaryHeader`.
    SCHEMA_VERSION: ClassVar[int] = 2
    SETTINGS: ClassVar[type[RunSettings]]

    settings: RunSettings
    identity: dict[str, Any]  # what a stored run must share with this one to be resumed
    uses_cache: bool = True  # whether its model calls go through the response cache

    # -- before the run ------------------------------------------------------------------
    def run_dir_identity(self) -> dict[str, Any]:
        """What names the default run directory (the identity, plus what a kind adds)."""
        return self.identity

    def default_run_dir(self) -> Path:
        return self.settings.default_run_dir(self.run_dir_identity())

    def bind(self, store: RunStore) -> None:
        """Record the identity in ``store``, or refuse a store holding another run."""
        store.bind_config(self.identity)

    def warnings(self) -> list[str]:
        """Shown when the run starts and kept in its summary (e.g. a tiny bundled model)."""
        return []

    @property
    def quiet(self) -> bool:
        return getattr(self.settings, "progress", "auto") == "off"

    # -- the run -------------------------------------------------------------------------
    @abstractmethod
    async def execute(self, ctx: RunContext) -> None:
        """Do (or finish) the work, storing every completed unit in ``ctx.store`` as soon
        as it is done; count calls and failures in ``ctx.outcome``."""

    async def aclose(self) -> None:
        """Release what ``__init__`` opened (the models it loaded)."""

    def summary_state(self, store: RunStore) -> Any:
        """What the summary is a function of: when it is unchanged, ``summary.json`` is."""
        extends = {k: getattr(self.settings, k, None) for k in sorted(self.settings.EXTENDS)}
        return [store.counts(), extends]

    # -- after the run: the store and the settings are enough ------------------------------
    @classmethod
    @abstractmethod
    def summarise(cls, store: RunStore, settings: RunSettings) -> dict[str, Any]:
        """The summary's body from the stored records, with its ``warnings`` list (see
        `recorded_warnings`); it must not load a model."""

    @classmethod
    def artifacts(cls, store: RunStore, settings: RunSettings,
                  summary: dict[str, Any]) -> dict[str, str]:
        """Other files the run directory holds beside ``summary.json`` (name -> text)."""
        return {}

    @classmethod
    def stored_settings(cls, store: RunStore) -> RunSettings:
        """The settings of the run stored in ``store``: its identity and the extent its
        latest session asked for."""
        config = {**store.config(), **json.loads(store.get_meta("extent") or "{}")}
        fields = cls.SETTINGS.model_fields
        try:
            return cls.SETTINGS(**{k: v for k, v in config.items() if k in fields})
        except ValidationError as exc:
            raise InputError(f"{store.run_dir}: stored settings are not valid for this "
                             f"personae version: {describe_validation(exc)}") from None


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    failures: list[str]
    model_calls: int
    cache_hits: int
    warnings: list[str]  # shown when the run started


def run(kind: RunKind, out: str | Path | None = None, *, use_cache: bool = True) -> RunResult:
    """Run (or resume) ``kind`` in ``out`` (default: `RunKind.default_run_dir`) and write
    its ``summary.json`` and artifacts.

    A run cut short (killed, Ctrl-C, failed calls) keeps every completed unit in its store;
    the same call again does only what is missing, and a finished run makes no model call.
    """
    run_dir = Path(out) if out is not None else kind.default_run_dir()
    store = RunStore(run_dir, kind=kind.KIND)
    cache = ResponseCache() if use_cache and kind.uses_cache else None
    outcome = Outcome()
    started = time.monotonic()
    try:
        kind.bind(store)
        # How much of the run this session asks for (``limit``, ``items``...): not part of
        # its identity, but of what its summary covers.
        store.set_meta("extent", json.dumps(kind.settings.model_dump(
            include=set(kind.settings.EXTENDS), mode="json")))
        display = Display(quiet=kind.quiet)
        shown = kind.warnings()
        for warning in shown:
            display.warn(warning)

        async def main() -> None:
            try:
                await kind.execute(RunContext(store, cache, outcome, display))
            finally:
                await kind.aclose()

        asyncio.run(main())
        record_warnings(store, failures=outcome.failures, notes=[*shown, *outcome.notes])
        summary = _summarise_once(kind, store, started, failed=bool(outcome.failures))
        return RunResult(run_dir, summary, outcome.failures, outcome.model_calls,
                         outcome.cache_hits, shown)
    finally:
        store.close()
        if cache is not None:
            cache.close()


def record_warnings(store: RunStore, *, failures: Sequence[str], notes: Sequence[str]) -> None:
    """Keep the latest session's failures and every note so far in the store, so a summary
    rewritten later keeps every warning the run had."""
    _, kept = recorded_warnings(store)
    store.set_meta("warnings", json.dumps({"failures": list(failures),
                                           "notes": list(dict.fromkeys([*kept, *notes]))}))


def recorded_warnings(store: RunStore) -> tuple[list[str], list[str]]:
    """(the last session's failures, the run's notes) as `record_warnings` kept them."""
    kept = json.loads(store.get_meta("warnings") or "{}")
    return list(kept.get("failures", [])), list(kept.get("notes", []))


def write_summary(kind: type[RunKind], store: RunStore, settings: RunSettings,
                  duration_s: float | None = None) -> dict[str, Any]:
    """(Re)write ``summary.json`` (header, then the kind's body) and the kind's artifacts
    from the stored records; returns the summary."""
    if duration_s is None:
        duration_s = float(store.get_meta("duration_s") or 0)
    body = kind.summarise(store, settings)
    header = SummaryHeader(kind=kind.KIND, schema_version=kind.SCHEMA_VERSION,
                           run_dir=str(store.run_dir), created=store.get_meta("created"),
                           duration_s=round(duration_s, 1), counts=store.counts(),
                           warnings=body.pop("warnings", []), personae_version=__version__)
    summary = {**header.model_dump(), **body}
    atomic_write(store.run_dir / SUMMARY_FILE,
                 json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    for name, text in kind.artifacts(store, settings, summary).items():
        atomic_write(store.run_dir / name, text)
    return summary


def _summarise_once(kind: RunKind, store: RunStore, started: float, *,
                    failed: bool) -> dict[str, Any]:
    """``summary.json`` as it stands when nothing it depends on changed since it was
    written, else written anew, with the run's duration summed over its sessions: a
    finished run re-run costs no summarising either."""
    state = json.dumps(kind.summary_state(store))
    path = store.run_dir / SUMMARY_FILE
    if not failed and store.get_meta("summarised") == state and path.is_file():
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("schema_version") == kind.SCHEMA_VERSION:
            return summary
    elapsed = time.monotonic() - started + float(store.get_meta("duration_s") or 0)
    store.set_meta("duration_s", str(elapsed))
    summary = write_summary(type(kind), store, kind.settings, elapsed)
    store.set_meta("summarised", state)
    return summary


@dataclass
class Reopened:
    """A stored run opened again: its store (migrated to this version's layout), its kind
    and its settings."""

    store: RunStore
    kind: type[RunKind]
    settings: RunSettings

    def close(self) -> None:
        self.store.close()


def reopen(run_dir: str | Path, kinds: Iterable[type[RunKind]]) -> Reopened:
    """The run in ``run_dir``, of whichever of ``kinds`` it is; a one-line error for a
    directory that holds no run or a kind this version does not know."""
    store = open_store(run_dir)
    by_name = {k.KIND: k for k in kinds}
    name = store.kind
    if name not in by_name:
        store.close()
        what = "a run of no known kind" if name is None else f"a {name} run"
        raise InputError(f"{run_dir} holds {what}, not a run of kind "
                         f"{' or '.join(by_name)}")
    try:
        return Reopened(store, by_name[name], by_name[name].stored_settings(store))
    except InputError:
        store.close()
        raise


def resummarise(run_dir: str | Path, kinds: Iterable[type[RunKind]]) -> dict[str, Any]:
    """Rewrite ``summary.json`` (and the artifacts) of the run in ``run_dir`` from its
    records, loading no model; returns the summary."""
    opened = reopen(run_dir, kinds)
    try:
        return write_summary(opened.kind, opened.store, opened.settings)
    finally:
        opened.close()
