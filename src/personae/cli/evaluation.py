"""``personae eval``, ``report`` and ``rescore``: evaluation runs and what can be done with any
stored run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personae.cli.options import csv, finish_run, run_dir_option
from personae.errors import GateFailed, InputError
from personae.evals.config import METRICS, PRESETS, EvalConfig
from personae.runtime.spine import RunResult

RunDirOpt = run_dir_option("eval-<settings digest>")


def _default(field: str) -> str:
    """``default: VALUE`` of an eval setting, from `EvalConfig` itself, for the help text
    (the options default to None so a ``--preset`` can fill what the user did not give)."""
    info = EvalConfig.model_fields[field]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore
    shown = ", ".join(map(str, value)) if isinstance(value, list) else value
    return f"default: {'all' if value is None else shown}"


def _preset_text(name: str) -> str:
    """A preset's settings as ``key=value`` (some, such as max_facts, have no flag)."""
    return ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                     for k, v in PRESETS[name].items())


JudgeOpt = Annotated[list[str] | None, typer.Option(
    "--judge", "-j", help=f"Judge model spec; repeat for several judges ({_default('judges')}).")]


def eval_(
    personas: Annotated[str | None, typer.Option(
        "--personas", "-p",
        help="Persona file, 'sample', 'personagym' or SET:ID "
        f"({_default('personas')}).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Subject model spec "
                                              f"({_default('model')}).")] = None,
    judge: JudgeOpt = None,
    suite: Annotated[str | None, typer.Option(
        "--suite", help="Comma-separated: fidelity, consistency, atomic "
        f"({_default('suites')}).")] = None,
    questions: Annotated[str | None, typer.Option(
        "--questions", help="auto (benchmark-v1 where it has the persona, else generate), "
        "benchmark-v1, generate, or a JSON file {task: [question, ...]} "
        f"({_default('questions')}).")] = None,
    per_task: Annotated[int | None, typer.Option(help="Questions per task and persona "
                                                 f"({_default('per_task')}).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N personas "
                                              f"({_default('limit')}).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="quick (a few minutes on a laptop: " + _preset_text("quick") + ") or standard ("
        + _preset_text("standard") + "); flags override it.")] = None,
    out: RunDirOpt = None,
    samples: Annotated[int | None, typer.Option(
        help="Responses per probe in the persona condition, each graded (atomic RC and "
        "`export --format dpo` need 2 or more; the report reads the first; "
        f"{_default('samples')}).")] = None,
    tasks: Annotated[str | None, typer.Option(
        help=f"Comma-separated PersonaGym tasks ({_default('tasks')}).")] = None,
    judge_batch: Annotated[int | None, typer.Option(
        help=f"Rubrics per judge request (PersonaGym batches 5; {_default('judge_batch')})."
    )] = None,
    reliability_sample: Annotated[int | None, typer.Option(
        help="Responses re-judged for the reliability checks (0 skips them; "
        f"{_default('reliability_sample')}).")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        help=f"Subject reply length limit ({_default('max_tokens')}).")] = None,
    judge_max_tokens: Annotated[int | None, typer.Option(
        help=f"Judge reply length limit ({_default('judge_max_tokens')}).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight per model (default: the backend's own limit).")] = None,
    seed: Annotated[int | None, typer.Option(help=f"Sampling seed ({_default('seed')}).")
                    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always call the models.")] = False,
    fail_under: Annotated[str | None, typer.Option(
        help="Quality gate: METRIC=FLOOR,... (metrics: " + ", ".join(METRICS) + "); exit 3 "
        "when an estimate is below its floor, e.g. fidelity=3.5,consistency=0.2.")] = None,
    baseline: Annotated[Path | None, typer.Option(
        help="Quality gate: an earlier eval run to compare with, probe by probe; exit 3 when "
        "a metric dropped beyond noise (its paired 95% interval above 0) and by more than "
        "--max-drop.")] = None,
    max_drop: Annotated[str | None, typer.Option(
        help="With --baseline: METRIC=DROP,... allowed (default: every measured metric, 0)."
    )] = None,
) -> None:
    """Measure how faithfully a model plays personas: PersonaGym fidelity, consistency (NLI),
    atomic trait fidelity, judge reliability, and no-persona / assistant baselines.

    With --fail-under or --baseline it is also a quality gate for CI: exit 3 when the run's
    numbers fail it (1: the run itself failed; 2: bad input). A gate never passes on a judge
    that failed its reliability checks."""
    from personae.evals.config import build_config
    from personae.evals.gate import check_suites, parse_thresholds
    from personae.evals.run import open_run, run_eval

    config = build_config(
        preset, personas=personas, model=model, judges=judge,
        suites=csv(suite), tasks=csv(tasks), questions=questions, per_task=per_task,
        limit=limit, samples=samples, judge_batch=judge_batch,
        reliability_sample=reliability_sample, max_tokens=max_tokens,
        judge_max_tokens=judge_max_tokens, concurrency=concurrency, seed=seed)
    floors = parse_thresholds(fail_under, "--fail-under")
    drops = parse_thresholds(max_drop, "--max-drop")
    if drops and baseline is None:
        raise InputError("--max-drop needs --baseline RUN_DIR (the run to compare with)")
    check_suites(config, [*floors, *drops])
    if baseline is not None:  # a wrong baseline is bad input: say so before any model runs
        open_run(baseline)[0].close()
    result = run_eval(config, out, use_cache=not no_cache)
    finish_run(result, f"{result.model_calls} model calls, {result.cache_hits} from the "
               "cache")
    if floors or baseline is not None:
        _gate(result, floors, baseline, drops)


def _gate(result: RunResult, floors: dict[str, float], baseline: Path | None,
         drops: dict[str, float]) -> None:
    """Print each gate condition (stderr) and exit 3 when one failed."""
    from personae.evals.gate import gate_run

    verdict = gate_run(result.run_dir, fail_under=floors, baseline=baseline, max_drop=drops)
    for condition in verdict.conditions:
        typer.echo(f"gate: {'ok    ' if condition.passed else 'FAILED'} {condition.line}",
                   err=True)
    if not verdict.passed:
        raise GateFailed(f"quality gate failed ({len(verdict.failures)} of "
                         f"{len(verdict.conditions)} conditions)")


def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Rewrite RUN_DIR's summary.json and self-contained report.html from its records (a run
    of any kind, finished or not; no model is loaded)."""
    from personae.report import rewrite_report
    from personae.report.console import print_summary

    summary = rewrite_report(run_dir)
    print_summary(summary)
    typer.echo(f"report: {run_dir / 'report.html'}", err=True)


def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    judge: Annotated[list[str], typer.Option(
        "--judge", "-j", help="Judge model spec; repeat for several judges.")],
) -> None:
    """Judge RUN_DIR's stored responses again with other judges, without regenerating them."""
    from personae.evals.run import open_run, run_eval

    store, config = open_run(run_dir)
    store.close()
    result = run_eval(config.model_copy(update={"judges": list(dict.fromkeys(judge))}),
                      run_dir, rescore=True)
    finish_run(result, f"{result.model_calls} model calls, {result.cache_hits} from the "
               "cache")

