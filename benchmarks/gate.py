"""Gate benchmark: how often the quality gate (``eval --baseline RUN --max-drop``) fails an
unchanged model (false alarms), and how often it catches a planted drop (power).

Noise model (a judge's 1-5 rubric score of one response)::

    score = clip(round(quality + probe_effect + response_noise), 1, 5)

* ``probe_effect ~ N(0, 0.5)``, fixed per probe and shared by both runs of a comparison
  (the same persona, task and question: some questions are harder than others);
* ``response_noise ~ N(0, 0.8)``, drawn afresh for every run (the subject samples a new
  response at temperature > 0, and the judge sees a new text); 1.2 as a sensitivity line;
* ``quality = 3.8`` for the unchanged model; the planted drop lowers it by 0.4, 10 % of
  the 4-point 1-5 scale. ``round`` is half-up. Rounding and the clip at 5 shrink the drop
  a run can see below 0.4: the observed drop is reported beside the latent one.

(a) Monte-Carlo: per-probe scores of a baseline run and of a current run (unchanged, or with
    the planted drop) go through the real ``personae.evals.gate.paired_drop`` and
    ``drop_condition`` (the union of the paired BCa bootstrap interval, 2000 resamples, and
    the paired t interval, as the gate runs it) ``--reps`` times at n = 10 probes
    (the ``quick`` preset: 2 personas x 5 tasks x 1 question), 200 (``standard``: 20 x 5 x
    2) and 2000 (the CLI default with no preset: all 200 PersonaGym personas x 5 x 2), with
    ``--max-drop`` 0 (the default with ``--baseline`` alone) and 0.3. The interval does not
    depend on the allowed drop, so it is computed once per pair of runs and both conditions
    read it. Then the
    smallest n (on a grid) from which the power stays at 80 %, for each noise and allowed
    drop, and the false-alarm rate at small n (5 to 80 probes) beside a paired t interval
    on the same data, the reference for how often a 95 % interval should exclude zero on
    the drop side (2.5 %).
(b) End to end: the real pipeline, ``run_eval`` then ``check_gate`` (what ``personae eval
    --baseline`` runs), against one loopback OpenAI-compatible server in a child process:
    subject models ``unchanged`` and ``degraded`` whose replies depend on the request's seed
    (a new ``--seed`` gives new responses) and a ``judge`` that grades by the noise model
    above (probe_effect from a hash of the rubric's task, persona and question;
    response_noise from a hash of the response; quality 3.4 when the response carries the
    degraded model's marker). ``--suite fidelity --reliability-sample 0``: the reliability
    checks are not what is measured, and with them the gate would also need this judge to
    pass them. Per repetition: a baseline run of ``unchanged``, then ``unchanged`` with a
    new seed (a false alarm if the gate fails) and ``degraded`` with that seed (a detection
    if it fails), each gated with max-drop 0 and 0.3. Shows that the pipeline (pairing by
    probe, parsing the judge) behaves as the simulation does. Default: the standard size
    (20 personas x 5 tasks x 2 questions = 200 probes, 1,400 calls a run) and 50
    repetitions: a run takes 2-4 s here, so 50 x 3 runs fit in about 6 minutes.

Targets: false-alarm rate <= 5 % and power >= 80 %, each a proportion with a Wilson 95 %
interval (``personae.stats.proportion_ci``); "met" reads the point estimate, ``ci_clear``
says whether the whole interval is on the right side. Everything is seeded from ``SEED``.

    PYTHONPATH=src python benchmarks/gate.py            # full run, about 14 minutes
    PYTHONPATH=src python benchmarks/gate.py --quick    # smoke run, about 1 minute

Results go to benchmarks/results/gate.json (``--out``) and a summary table to gate.md beside
it. The machine is not isolated: the load average at the start is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
# benchmarks are scripts, not a package: _worker is found on the path above
from _worker import ChildServer, environment, finish, serve_forever

if (ROOT / "src" / "personae").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from personae.evals import gate
from personae.stats import proportion_ci

SEED = 12  # issue 12; every random draw below derives from it
QUALITY = 3.8
PLANTED_DROP = 0.4  # 10 % of the 4-point 1-5 scale
PROBE_SD = 0.5
NOISE_SD = 0.8
NOISY_SD = 1.2  # sensitivity line: a noisier subject or judge
MAX_DROPS = (0.0, 0.3)
SIZES = {"quick": 10, "standard": 200, "cli_default": 2000}  # probes per run
TARGET_FALSE_ALARM = 0.05
TARGET_POWER = 0.80
SMALL_NS = (5, 20, 40, 80)  # false alarms below the standard size (10 is a main cell)
# The power search's grid; the main cells add 10, 200 and 2000 (with their own reps).
SEARCH_NS = (20, 40, 60, 80, 100, 125, 150, 175, 250, 300, 400, 600, 1000)
MARKER = "[degraded model]"  # how the loopback judge tells the degraded subject's replies
TASKS_PER_PERSONA = 5


# --------------------------------------------------------------------------------------------
# The noise model


def rubric_score(latent: np.ndarray) -> np.ndarray:
    """The judge's integer 1-5 score of a latent quality: half-up rounding, clipped."""
    return np.clip(np.floor(latent + 0.5), 1, 5)


def expected_observed_drop(noise_sd: float) -> float:
    """The drop in mean score a run can see for the planted 0.4 (exact: a sum over the
    rounding cells of the normal latent score, probe and response noise together)."""
    sd = math.hypot(PROBE_SD, noise_sd)
    dist = statistics.NormalDist(0, sd)

    def mean_score(quality: float) -> float:
        # E[clip(round(x))] = 1 + sum_k P(x >= k - 0.5) for k = 2..5
        return 1 + sum(1 - dist.cdf(k - 0.5 - quality) for k in range(2, 6))

    return mean_score(QUALITY) - mean_score(QUALITY - PLANTED_DROP)


# --------------------------------------------------------------------------------------------
# (a) Monte-Carlo through the real drop_condition


def as_units(scores: np.ndarray) -> dict[str, float]:
    """Per-probe scores keyed as ``unit_scores`` keys them (by probe)."""
    return {f"p{i}": float(s) for i, s in enumerate(scores)}


def gate_fails(current: Mapping[str, float], baseline: Mapping[str, float]) -> list[bool]:
    """The gate's verdict (True = failed) at each allowed drop: one interval per pair of
    runs (`paired_drop`, as check_gate computes it), read by each condition."""
    drop = gate.paired_drop(current, baseline)
    return [not gate.drop_condition("fidelity", drop, md).passed for md in MAX_DROPS]


def t_test_fails(drop: np.ndarray) -> bool:
    """A reference the bootstrap is judged against: would a paired t interval (95 %) of the
    per-probe drops exclude zero on the drop side (the gate's test at max-drop 0)?"""
    from scipy import stats

    n, mean = drop.size, float(np.mean(drop))
    if n < 2 or float(np.std(drop)) == 0:
        return mean > 0  # a degenerate interval, as the gate treats it
    half = stats.t.ppf(0.975, n - 1) * float(np.std(drop, ddof=1)) / math.sqrt(n)
    return bool(mean - half > 0)


def mc_rep(rng: np.random.Generator, n: int, noise_sd: float,
           arms: Sequence[str]) -> dict[str, tuple[list[bool], float, bool]]:
    """One repetition: a probe set, a baseline run, and a current run per arm
    (``unchanged`` or ``degraded``); per arm the gate's verdict at each max-drop (True =
    failed), the observed mean drop, and the t-test reference's verdict."""
    probe = rng.normal(0, PROBE_SD, n)
    base = rubric_score(QUALITY + probe + rng.normal(0, noise_sd, n))
    out = {}
    for arm in arms:
        quality = QUALITY - (PLANTED_DROP if arm == "degraded" else 0.0)
        cur = rubric_score(quality + probe + rng.normal(0, noise_sd, n))
        fails = gate_fails(as_units(cur), as_units(base))
        out[arm] = (fails, float(np.mean(base - cur)), t_test_fails(base - cur))
    return out


def rate(successes: int, n: int) -> dict[str, Any]:
    return {"count": successes, **proportion_ci(successes, n).as_dict()}


def mc_cell(n: int, noise_sd: float, reps: int,
            arms: Sequence[str] = ("unchanged", "degraded")) -> dict[str, Any]:
    """False-alarm rate and power at ``n`` probes over ``reps`` repetitions."""
    rng = np.random.default_rng([SEED, n, round(noise_sd * 100), reps])
    counts = {arm: [0] * len(MAX_DROPS) for arm in arms}
    t_counts = dict.fromkeys(arms, 0)
    drops: dict[str, list[float]] = {arm: [] for arm in arms}
    started = time.perf_counter()
    for _ in range(reps):
        for arm, (fails, drop, t_fail) in mc_rep(rng, n, noise_sd, arms).items():
            counts[arm] = [c + f for c, f in zip(counts[arm], fails, strict=True)]
            t_counts[arm] += t_fail
            drops[arm].append(drop)
    cell: dict[str, Any] = {"n": n, "noise_sd": noise_sd, "reps": reps}
    names = {"unchanged": "false_alarm", "degraded": "power"}
    for arm in arms:
        cell[names[arm]] = {f"{md:g}": rate(c, reps) for md, c in zip(MAX_DROPS, counts[arm],
                                                                     strict=True)}
        cell[f"{names[arm]}_t_test_reference"] = rate(t_counts[arm], reps)
        cell[f"observed_drop_{arm}"] = {"mean": round(statistics.fmean(drops[arm]), 4),
                                        "sd": round(statistics.stdev(drops[arm]), 4)}
    cell["wall_s"] = round(time.perf_counter() - started, 1)
    return cell


def verdicts(cell: Mapping[str, Any]) -> dict[str, Any]:
    """Met/missed per max-drop: false alarms <= 5 %, power >= 80 % (point estimates), and
    whether the whole Wilson interval is on the right side of the target."""
    out = {}
    for md in cell["false_alarm"]:
        fa, pw = cell["false_alarm"][md], cell["power"][md]
        out[md] = {"false_alarm_met": fa["value"] <= TARGET_FALSE_ALARM,
                   "false_alarm_ci_clear": fa["ci_high"] <= TARGET_FALSE_ALARM,
                   "power_met": pw["value"] >= TARGET_POWER,
                   "power_ci_clear": pw["ci_low"] >= TARGET_POWER}
    return out


def min_n_search(noise_sd: float, reps: int, grid: Sequence[int],
                 cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Power of the planted drop over a grid of n, with the main cells' sizes (10, 200,
    2000) added; per max-drop the smallest n from which it stays at 80 % or more (None
    when even the largest n falls short)."""
    rows = [mc_cell(n, noise_sd, reps, arms=("degraded",)) for n in grid]
    rows += [c for c in cells if c["noise_sd"] == noise_sd and c["n"] not in grid]
    rows.sort(key=lambda row: row["n"])
    power = {md: [(row["n"], row["power"][md]["value"]) for row in rows]
             for md in (f"{m:g}" for m in MAX_DROPS)}
    # The smallest n from which every larger n of the grid keeps 80 %: one lucky estimate
    # below a dip is not the answer.
    smallest = {md: next((n for i, (n, _) in enumerate(pts)
                          if all(p >= TARGET_POWER for _, p in pts[i:])), None)
                for md, pts in power.items()}
    return {"noise_sd": noise_sd, "reps": reps, "power_by_n": power,
            "min_n_for_80pct_power": smallest}


def bench_monte_carlo(reps: int, search_reps: int, grid: Sequence[int]) -> dict[str, Any]:
    cells = []
    for noise_sd in (NOISE_SD, NOISY_SD):
        for name, n in SIZES.items():
            cell = mc_cell(n, noise_sd, reps)
            cells.append({"size": name, **cell, "verdicts": verdicts(cell)})
            print(f"  noise sd {noise_sd}, n={n} ({name}), {reps} reps: {cell['wall_s']} s",
                  flush=True)
    # A bootstrap interval of a mean over few probes alone is too narrow (plug-in spread,
    # normal-like tails); the gate widens it to the t interval: false alarms at small n
    # against the t test alone show whether that holds them at the nominal 2.5 %.
    print(f"  false alarms at small n {list(SMALL_NS)}", flush=True)
    small = [mc_cell(n, NOISE_SD, reps, arms=("unchanged",)) for n in SMALL_NS]
    small += [c for c in cells if c["noise_sd"] == NOISE_SD and c["n"] not in SMALL_NS]
    small.sort(key=lambda c: c["n"])
    searches = []
    for noise_sd in (NOISE_SD, NOISY_SD):
        print(f"  power search, noise sd {noise_sd}, n in {list(grid)}", flush=True)
        searches.append(min_n_search(noise_sd, search_reps, grid, cells))
    return {"cells": cells, "power_search": searches,
            "false_alarm_by_n": [{"n": c["n"], "reps": c["reps"],
                                  "gate": c["false_alarm"]["0"],
                                  "t_test_reference": c["false_alarm_t_test_reference"]}
                                 for c in small],
            "expected_observed_drop": {f"{sd:g}": round(expected_observed_drop(sd), 4)
                                       for sd in (NOISE_SD, NOISY_SD)}}


# --------------------------------------------------------------------------------------------
# (b) End to end: run_eval and check_gate against loopback models


def normal_deviate(tag: str, text: str) -> float:
    """A standard normal deviate fixed by ``text`` (and the benchmark's seed)."""
    digest = hashlib.sha256(f"{SEED}:{tag}:{text}".encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return statistics.NormalDist().inv_cdf(u)


def judged_score(text: str) -> int:
    """The loopback judge's score of a PersonaGym rubric request, by the noise model: the
    probe is the task (the rubric's head), the persona and the question; the response is
    what follows ``Response:``."""
    before, _, after = text.rpartition("Response:")
    response = after.split("Evaluation Form:")[0].strip()
    probe = before.split("Score Examples:")[0] + before.rpartition("Persona Description:")[2]
    quality = QUALITY - (PLANTED_DROP if MARKER in response else 0.0)
    latent = (quality + PROBE_SD * normal_deviate("probe", probe)
              + NOISE_SD * normal_deviate("response", response))
    return int(rubric_score(np.array([latent]))[0])


def subject_reply(request: dict) -> str:
    """A reply that varies with the conversation and the seed (a new ``--seed`` samples a
    new response); the degraded model marks its replies so the judge can grade them down."""
    from personae.testing.loopback import varied_reply

    mark = f" {MARKER}" if request.get("model") == "degraded" else ""
    return f"{varied_reply(request)} (seed {request.get('seed')}){mark}"


def loopback_reply(request: dict) -> str:
    """One server for all three models, told apart by the request's model name."""
    from personae.testing.loopback import grading_judge

    if request.get("model") == "judge":
        return grading_judge(judged_score)(request)
    return subject_reply(request)


def serve() -> None:
    """The child process's side: the loopback server with `loopback_reply`."""
    from personae.testing.loopback import LoopbackServer

    serve_forever(LoopbackServer(reply_fn=loopback_reply, keep_bodies=False))


def eval_run(url: str, subject: str, seed: int, limit: int, per_task: int,
             out: Path) -> tuple[Any, float]:
    """One fidelity eval of ``subject`` at ``seed``; its result and wall seconds."""
    from personae.evals.config import EvalConfig
    from personae.evals.run import run_eval

    config = EvalConfig(personas="personagym", limit=limit, per_task=per_task,
                        suites=["fidelity"], reliability_sample=0, seed=seed,
                        model=f"openai:{subject}@{url}", judges=[f"openai:judge@{url}"],
                        concurrency=64, progress="off")
    started = time.perf_counter()
    result = run_eval(config, out, use_cache=False)  # every call reaches the server
    return result, time.perf_counter() - started


def gated(result: Any, baseline: Path) -> tuple[list[Any], dict[str, float], float]:
    """``check_gate`` of a finished run against ``baseline`` at each max-drop (as
    ``eval --baseline --max-drop fidelity=D`` runs it), the run's per-probe scores, and
    the seconds the checks took."""
    from personae.evals.run import open_run

    started = time.perf_counter()
    store, config = open_run(result.run_dir)
    try:
        checks = [gate.check_gate(store, config, baseline=baseline,
                                  max_drop={"fidelity": md}) for md in MAX_DROPS]
        units = gate.unit_scores(store, config, "fidelity")
    finally:
        store.close()
    return checks, units, time.perf_counter() - started


def e2e_rep(url: str, rep: int, limit: int, per_task: int, tmp: Path) -> dict[str, Any]:
    """A baseline run, then an unchanged and a degraded run at a new seed, both gated."""
    seed = SEED * 10_000 + 2 * rep
    base, base_s = eval_run(url, "unchanged", seed, limit, per_task, tmp / f"base{rep}")
    from personae.evals.run import open_run

    store, config = open_run(base.run_dir)
    base_units = gate.unit_scores(store, config, "fidelity")
    store.close()
    out: dict[str, Any] = {"baseline_s": base_s, "baseline_calls": base.model_calls}
    for arm in ("unchanged", "degraded"):
        result, run_s = eval_run(url, arm, seed + 1, limit, per_task, tmp / f"{arm}{rep}")
        checks, units, gate_s = gated(result, base.run_dir)
        common = [k for k in base_units if k in units]
        out[arm] = {"fails": [not v.passed for v in checks],
                    "lines": [v.failures for v in checks],
                    "judge_failed": any("judge failed" in line for v in checks
                                        for line in v.failures),
                    "observed_drop": statistics.fmean(base_units[k] - units[k]
                                                      for k in common),
                    "probes": len(common), "calls": result.model_calls,
                    "run_s": run_s, "gate_s": gate_s}
    return out


def bench_end_to_end(reps: int, limit: int, per_task: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with ChildServer([str(Path(__file__).resolve()), "--serve"]) as server, \
            tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        for rep in range(reps):
            rows.append(e2e_rep(server.base_url, rep, limit, per_task, Path(tmp)))
            if rep == 0 or (rep + 1) % 10 == 0:
                print(f"  rep {rep + 1}/{reps}: {rows[-1]['unchanged']['run_s']:.1f} s "
                      "per gated run", flush=True)
    return summarise_e2e(rows, limit, per_task)


def summarise_e2e(rows: Sequence[Mapping[str, Any]], limit: int,
                  per_task: int) -> dict[str, Any]:
    reps = len(rows)
    out: dict[str, Any] = {"reps": reps, "n": limit * TASKS_PER_PERSONA * per_task,
                           "personas": limit, "per_task": per_task, "noise_sd": NOISE_SD}
    names = {"unchanged": "false_alarm", "degraded": "power"}
    for arm, name in names.items():
        out[name] = {f"{md:g}": rate(sum(r[arm]["fails"][i] for r in rows), reps)
                     for i, md in enumerate(MAX_DROPS)}
        drops = [r[arm]["observed_drop"] for r in rows]
        out[f"observed_drop_{arm}"] = {"mean": round(statistics.fmean(drops), 4),
                                       "sd": round(statistics.stdev(drops), 4)}
        # A failure for the judge's reliability would be a false alarm for the wrong reason.
        out[f"judge_condition_failures_{arm}"] = sum(r[arm]["judge_failed"] for r in rows)
    runs = [r[arm] for r in rows for arm in names]
    out["probes_paired"] = sorted({r["probes"] for r in runs})
    out["one_gated_run"] = {
        "model_calls": sorted({r["calls"] for r in runs}),
        "eval_s_median": round(statistics.median(r["run_s"] for r in runs), 2),
        "gate_check_s_median": round(statistics.median(r["gate_s"] for r in runs), 3)}
    out["example_failure_lines"] = {arm: next((r[arm]["lines"] for r in rows
                                               if any(r[arm]["fails"])), None)
                                    for arm in names}
    out["verdicts"] = verdicts(out)
    return out


# --------------------------------------------------------------------------------------------
# Output


def _pct(r: Mapping[str, Any]) -> str:
    return f"{r['value']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]"


def table_rows(res: Mapping[str, Any]) -> list[list[str]]:
    """One row per (setting, n, max-drop): false-alarm rate and power with their intervals
    and verdicts."""
    rows = []
    cells = [("monte-carlo", c) for c in res.get("monte_carlo", {}).get("cells", [])]
    if res.get("end_to_end"):
        cells.append(("end-to-end", res["end_to_end"]))
    for part, c in cells:
        for md, v in c["verdicts"].items():
            fa, pw = c["false_alarm"][md], c["power"][md]
            rows.append([part, f"{c['noise_sd']:g}", str(c["n"]), md, str(c["reps"]),
                         f"{_pct(fa)} {'met' if v['false_alarm_met'] else 'MISSED'}",
                         f"{_pct(pw)} {'met' if v['power_met'] else 'MISSED'}"])
    return rows


def target_lines(res: Mapping[str, Any]) -> list[str]:
    """The targets at the standard preset and the CLI default, under the stated noise."""
    lines = []
    for c in res.get("monte_carlo", {}).get("cells", []):
        if c["noise_sd"] != NOISE_SD or c["size"] == "quick":
            continue
        for md, v in c["verdicts"].items():
            fa, pw = c["false_alarm"][md], c["power"][md]
            lines.append(
                f"{c['size']} (n={c['n']}), max-drop {md}: false alarms "
                f"{'met' if v['false_alarm_met'] else 'MISSED'} ({_pct(fa)}"
                f"{'' if v['false_alarm_ci_clear'] else ', interval reaches past 5 %'}), "
                f"power {'met' if v['power_met'] else 'MISSED'} ({_pct(pw)}"
                f"{'' if v['power_ci_clear'] else ', interval reaches below 80 %'})")
    return lines


def s_max(search: Mapping[str, Any]) -> int:
    """The largest n a power search looked at."""
    return max(n for pts in search["power_by_n"].values() for n, _ in pts)


def same_n_cell(res: Mapping[str, Any], n: int) -> Mapping[str, Any] | None:
    return next((c for c in res.get("monte_carlo", {}).get("cells", [])
                 if c["n"] == n and c["noise_sd"] == NOISE_SD), None)


HEADER = ["part", "noise sd", "n", "max-drop", "reps", "false alarms (<= 5 %)",
          "power (>= 80 %)"]


def print_table(res: Mapping[str, Any]) -> None:
    print("\n" + "  ".join(f"{h:<14}" for h in HEADER[:5]) + f"{HEADER[5]:<36}{HEADER[6]}")
    for row in table_rows(res):
        print("  ".join(f"{x:<14}" for x in row[:5]) + f"{row[5]:<36}{row[6]}")
    print("\ntargets at noise sd " + f"{NOISE_SD:g}:")
    for line in target_lines(res):
        print(f"  {line}")
    for s in res.get("monte_carlo", {}).get("power_search", []):
        print(f"smallest n with power >= 80 % (noise sd {s['noise_sd']:g}): "
              + ", ".join(f"max-drop {md}: {n}" for md, n in s["min_n_for_80pct_power"].items()))
    e2e = res.get("end_to_end")
    if e2e:
        g = e2e["one_gated_run"]
        print(f"one gated run (n={e2e['n']}): {g['model_calls']} model calls, "
              f"{g['eval_s_median']} s eval + {g['gate_check_s_median']} s gate check")


def markdown(res: Mapping[str, Any]) -> str:
    """gate.md: the noise model, the table, the power search and the verdicts."""
    mc = res.get("monte_carlo", {})
    lines = ["# Quality gate: false alarms and power", "",
             (f"Generated by `benchmarks/gate.py` (seed {SEED}; {res['total_wall_s']:.0f} s "
              f"on {res['environment']['cpus']} cores{'; --quick' if res['quick'] else ''})."),
             "",
             "Noise model: judge score = clip(round(quality + probe_effect + response_noise), "
             f"1, 5); probe_effect ~ N(0, {PROBE_SD}) shared by both runs, response_noise ~ "
             f"N(0, sd) afresh each run (sd {NOISE_SD}; {NOISY_SD} as a sensitivity line); "
             f"quality {QUALITY}, planted drop {PLANTED_DROP} (10 % of the scale). Rounding "
             "and the clip at 5 leave an observed drop of "
             + ", ".join(f"{v:.3f} (sd {k})" for k, v in
                         mc.get("expected_observed_drop", {}).items()) + ".", "",
             ("Gate: `eval --baseline RUN --max-drop fidelity=D` fails when the drop's paired "
              "interval (the union of the BCa bootstrap interval, 2000 resamples, and the "
              "paired t interval) excludes 0 and the drop exceeds D. Rates are proportions of repetitions with Wilson 95 % intervals; "
              "met/MISSED reads the point estimate."), "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(res)]
    lines += ["", f"Targets at the default sample size (noise sd {NOISE_SD:g}):", ""]
    lines += [f"- {line}" for line in target_lines(res)]
    lines.append("")
    for s in mc.get("power_search", []):
        pts = "; ".join(f"max-drop {md}: " + ", ".join(f"{n}: {p:.0%}" for n, p in v)
                        for md, v in s["power_by_n"].items())
        lines.append(f"- Smallest n with power >= 80 % (noise sd {s['noise_sd']:g}, "
                     f"{s['reps']} reps per n): " + ", ".join(
                         f"max-drop {md}: "
                         f"{n if n is not None else f'none up to {s_max(s)}'}"
                         for md, n in s["min_n_for_80pct_power"].items())
                     + f". Power by n: {pts}.")
    if mc.get("false_alarm_by_n"):
        lines.append(f"- False alarms by n (noise sd {NOISE_SD:g}, max-drop 0), the gate "
                     "against a paired t interval alone on the same data: " + "; ".join(
                         f"{r['n']}: {r['gate']['value']:.1%} vs "
                         f"{r['t_test_reference']['value']:.1%}"
                         for r in mc["false_alarm_by_n"]) + ".")
    e2e = res.get("end_to_end")
    if e2e:
        g = e2e["one_gated_run"]
        lines.append(f"- End to end (`run_eval` + `check_gate`, loopback subject and judge, "
                     f"n={e2e['n']}, {e2e['reps']} reps): one gated run is "
                     f"{g['model_calls']} model calls, {g['eval_s_median']} s of eval and "
                     f"{g['gate_check_s_median']} s of gate check; observed drop "
                     f"{e2e['observed_drop_degraded']['mean']:.3f} "
                     f"(sd {e2e['observed_drop_degraded']['sd']:.3f}) degraded, "
                     f"{e2e['observed_drop_unchanged']['mean']:.3f} "
                     f"(sd {e2e['observed_drop_unchanged']['sd']:.3f}) unchanged"
                     + _mc_drops(same_n_cell(res, e2e["n"])) + ".")
    return "\n".join(lines) + "\n"


def _mc_drops(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return ""
    d, u = cell["observed_drop_degraded"], cell["observed_drop_unchanged"]
    return (f" (the simulation at that n: {d['mean']:.3f} (sd {d['sd']:.3f}) and "
            f"{u['mean']:.3f} (sd {u['sd']:.3f}))")


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few repetitions")
    ap.add_argument("--reps", type=int, help="Monte-Carlo repetitions per cell (default "
                    "1000, --quick 50)")
    ap.add_argument("--search-reps", type=int, help="repetitions per n of the power search "
                    "(default 500, --quick 30)")
    ap.add_argument("--e2e-reps", type=int, help="end-to-end repetitions (default 50, "
                    "--quick 2)")
    ap.add_argument("--e2e-limit", type=int, default=20, help="end-to-end personas "
                    "(default 20: with --e2e-per-task 2, the standard preset's 200 probes)")
    ap.add_argument("--e2e-per-task", type=int, default=2)
    ap.add_argument("--skip-mc", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gate.json")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve()
        return 0
    reps = args.reps or (50 if args.quick else 1000)
    search_reps = args.search_reps or (30 if args.quick else 500)
    e2e_reps = args.e2e_reps or (2 if args.quick else 50)
    grid = SEARCH_NS[::4] if args.quick else SEARCH_NS

    results: dict[str, Any] = {
        "quick": args.quick, "seed": SEED, "environment": environment("personae", "numpy"),
        "noise_model": {"quality": QUALITY, "planted_drop": PLANTED_DROP,
                        "probe_sd": PROBE_SD, "response_noise_sd": NOISE_SD,
                        "sensitivity_response_noise_sd": NOISY_SD,
                        "score": "clip(floor(quality + probe + noise + 0.5), 1, 5)"},
        "gate": {"max_drops": list(MAX_DROPS), "interval": "union of the paired BCa "
                 "bootstrap (2000 resamples) and the paired t interval "
                 "(personae.evals.gate.paired_drop, as the gate runs it)"},
        "targets": {"false_alarm_max": TARGET_FALSE_ALARM, "power_min": TARGET_POWER}}
    started = time.perf_counter()
    if not args.skip_mc:
        print(f"(a) Monte-Carlo, {reps} reps per cell", flush=True)
        results["monte_carlo"] = bench_monte_carlo(reps, search_reps, grid)
    if not args.skip_e2e:
        print(f"(b) end to end, {e2e_reps} reps of n={args.e2e_limit * 5 * args.e2e_per_task}",
              flush=True)
        results["end_to_end"] = bench_end_to_end(e2e_reps, args.e2e_limit, args.e2e_per_task)
    code = finish(args.out, results, started, print_table)
    args.out.with_suffix(".md").write_text(markdown(results))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
