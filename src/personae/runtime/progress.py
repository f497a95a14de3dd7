"""Progress for batches: a rich bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressReporter:
    """Counts done/total (and how many came from the cache) and shows rate and ETA.

    ``mode``: ``"auto"`` (bar on a TTY, lines otherwise), ``"bar"``, ``"lines"`` or ``"off"``.
    ``done_before``: work of this stage a resumed run already has in its store; when there
    is some, one line says so (``label: resuming: 40 of 120 done``) before the bar starts.

    >>> import io
    >>> out = io.StringIO()
    >>> ProgressReporter("turns", 80, mode="lines", stream=out, done_before=40).close()
    >>> out.getvalue()
    'turns: resuming: 40 of 120 done\\n'
    """

    def __init__(self, label: str, total: int | None, *, mode: str = "auto",
                 stream: TextIO | None = None, every_s: float = 10.0,
                 done_before: int = 0) -> None:
        self.label, self.total, self.done, self.cached, self.failed = label, total, 0, 0, 0
        self._stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self._stream.isatty() else "lines"
        self.mode = mode
        if done_before > 0 and mode != "off":
            of = f" of {done_before + total}" if total is not None else ""
            print(f"{label}: resuming: {done_before}{of} done", file=self._stream, flush=True)
        self._every = every_s
        self._start = self._last = time.monotonic()
        self._progress: Progress | None = None
        if mode == "bar":
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self._stream), transient=False,
            )
            self._task = self._progress.add_task(label, total=total, rate="")
            self._progress.start()

    def advance(self, *, cached: bool = False, failed: bool = False) -> None:
        self.done += 1
        self.cached += cached
        self.failed += failed
        now = time.monotonic()
        if self._progress is not None:
            rate = self.done / max(now - self._start, 1e-9)
            self._progress.update(self._task, advance=1, rate=f"{rate:,.1f}/s")
        elif self.mode == "lines" and now - self._last >= self._every:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total}" if self.total is not None else ""
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {max(0.0, (self.total - self.done) / rate):.0f}s"
        print(f"{self.label}: {self.done}{of} done ({self.cached} cached, {self.failed} failed), "
              f"{rate:.1f}/s{eta}", file=self._stream, flush=True)

    def add_total(self, delta: int) -> None:
        """Change the expected total, e.g. when work planned at the start turns out not to
        be needed (a conversation that ended before its turn budget)."""
        if self.total is None:
            return
        self.total = max(self.done, self.total + delta)
        if self._progress is not None:
            self._progress.update(self._task, total=self.total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.mode == "lines" and self.done:
            self._line(time.monotonic())
