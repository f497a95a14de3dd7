"""The report of a run of any kind: ``report.html`` (and a kind's extra views) rendered from
its summary, and a stored run's summary and report rewritten from its records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from personae.errors import InputError
from personae.evals.run import EvalKind
from personae.report.html import REPORT_NAME, write_report
from personae.report.simulate import write_simulate_report
from personae.report.survey import write_survey_report
from personae.report.sweep import write_sweep_report
from personae.runtime.spine import SUMMARY_FILE, RunKind, resummarise
from personae.sim.run import SimKind
from personae.steer.sweep import Sweep
from personae.survey.run import SurveyKind

# Every kind of run this version writes, so `personae report` and `export` open any of them.
KINDS: tuple[type[RunKind], ...] = (EvalKind, SurveyKind, SimKind, Sweep)

_WRITERS: dict[str, Callable[[Mapping[str, Any], Path], object]] = {
    "eval": write_report, "survey": write_survey_report, "simulate": write_simulate_report,
    "sweep": write_sweep_report,
}


def render_report(summary: Mapping[str, Any], run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` for ``summary`` (of any kind); returns its path.

    >>> import tempfile
    >>> render_report({"kind": "census"}, tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    personae.errors.InputError: no report for a run of kind 'census'
    """
    writer = _WRITERS.get(str(summary.get("kind")))
    if writer is None:
        raise InputError(f"no report for a run of kind {summary.get('kind')!r}")
    writer(summary, Path(run_dir))
    return Path(run_dir) / REPORT_NAME


def report_for(summary: Mapping[str, Any], run_dir: str | Path) -> Path:
    """``run_dir/report.html``, rendered only when it is missing or older than
    ``summary.json``: a finished run re-run rewrites neither."""
    report, written = Path(run_dir) / REPORT_NAME, Path(run_dir) / SUMMARY_FILE
    if (report.is_file() and written.is_file()
            and report.stat().st_mtime_ns >= written.stat().st_mtime_ns):
        return report
    return render_report(summary, run_dir)


def rewrite_report(run_dir: str | Path) -> dict[str, Any]:
    """Rewrite ``summary.json`` and ``report.html`` of the run in ``run_dir`` (any kind,
    finished or cut short) from its records, without loading a model; returns the summary."""
    summary = resummarise(run_dir, KINDS)
    render_report(summary, run_dir)
    return summary
