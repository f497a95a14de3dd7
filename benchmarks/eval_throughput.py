"""Eval throughput: ``personae eval`` against a PersonaGym-style sequential loop.

The same probes x 1 judge, with the same model calls, two ways against the same server:

* the baseline, PersonaGym's way: a plain Python loop over the openai SDK's sync client
  (``chat.completions.create``, ``max_retries=0``), one request at a time, no cache. It builds
  its prompts with personae's own builders (`EvalRun.subject_messages`,
  ``personagym.score_examples_messages`` / ``grading_messages``, `describe`) and sends the
  same sampling parameters, so the work is identical: per probe and condition (persona,
  no_persona, assistant) the subject request, per probe the score-examples request, per
  response the rubric-grading request;
* ``python -m personae eval --personas personagym --limit L --per-task 1 --suite fidelity
  --reliability-sample 0 --concurrency C ...`` as a subprocess, timed from start to exit
  (interpreter start-up, imports, summary.json and report.html included), with a fresh
  response cache (PERSONAE_CACHE_DIR) and a fresh run directory. Then the same command again
  (same cache, same run directory: the run store has everything) and once more into a fresh
  run directory (same cache: every call is a cache hit). Both re-runs must make zero model
  calls; the target is that they take under 5 % of the first run's time.

Two servers, each in its own process:

* the loopback test server (canned reply after 50 ms), with 200 probes (``--limit 40``,
  5 tasks x 1 question): 1,400 calls. Target: personae at least 20x the sequential loop. The
  server (this file, ``--serve-loopback``) also logs when each request arrived and was
  answered, which gives the personae run's timeline: start-up before the first request,
  each stage's span against its floor (ceil(calls / C) x 50 ms), the gaps between stages,
  and the tail after the last reply.
* ``python -m llama_cpp.server`` serving the bundled SmolLM2-135M GGUF (its defaults,
  n_ctx 4096). On a 2-core CPU 200 probes (1,400 calls, mostly ~300-750-token rubric
  prompts at ~150-300 prompt tokens/s) would take over an hour per side, so this row uses
  a subset by default: ``--llama-limit`` 2 personas (10 probes, 70 calls) and
  ``--llama-max-tokens`` 16, in 2 rounds. llama.cpp's server runs one request at a time, so
  the expected ratio is about 1x: the row shows that personae adds no overhead to a real
  server beyond its own start-up and report (``wall_minus_server_busy_s``: wall time minus
  the time llama.cpp reports for the requests, from its log), and what a cached re-run
  saves. Calls are counted in the server's access log.

    PYTHONPATH=src python benchmarks/eval_throughput.py            # full run, about 15 minutes
    PYTHONPATH=src python benchmarks/eval_throughput.py --quick    # smoke run, about 2 minutes

Results go to benchmarks/results/eval_throughput.json (``--out``) and a table is printed.
Each row runs ``--rounds`` (loopback, default 3) or ``--llama-rounds`` (default 2) rounds of
the loop and personae (first run and both re-runs), alternating which goes first, so that
drift in the machine's speed hits both alike; the ratio is total loop seconds / total
personae first-run seconds, the re-run share total re-run seconds / total first-run
seconds, all measured in this run against the same server process. The machine is not
isolated (other jobs may share its 2 cores): the load average at the start is recorded,
and llama.cpp's prompt tokens/s under each side shows whether the server was equally fast
for both. The loop is timed inside this process after a warm-up request (imports and
connection set-up excluded), personae as a whole process; that favours the loop.
``personae_eval_import_s`` is what a fresh interpreter needs just to import what
``personae eval`` imports: the floor of any run, first or cached.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src" / "personae").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from personae.evals import personagym
from personae.evals.config import CONDITIONS, build_config
from personae.evals.engine import EvalRun, response_key
from personae.evals.probes import Probe, benchmark_probes
from personae.judge import describe
from personae.models import ChatParams, Message
from personae.runtime.store import RunStore
from personae.testing.llama_server import LlamaServer
from personae.testing.loopback import LoopbackServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
# benchmarks are scripts, not a package: _worker is found on the path above
from _worker import (  # noqa: E402
    ChildServer,
    child_env,
    environment,
    finish,
    serve_forever,
)

DELAY_S = 0.05  # the loopback server's reply delay
TARGET_SPEEDUP = 20.0  # personae vs the sequential loop, against the 50 ms server
TARGET_RERUN_SHARE = 0.05  # a fully cached re-run: under 5 % of the first run's time
MODEL_NAME = "m"  # the model name sent to the servers (both ignore it)
CALLS_RE = re.compile(r"(\d+) model calls, (\d+) from (?:the )?cache")
# llama.cpp's per-request timing lines in llama_cpp.server's log
LLAMA_TOTAL_RE = re.compile(r"llama_perf_context_print:\s+total time =\s*([\d.]+) ms")
LLAMA_PROMPT_RE = re.compile(
    r"llama_perf_context_print:\s+prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def _child_env(cache_dir: Path | None = None) -> dict[str, str]:
    return child_env(**({"PERSONAE_CACHE_DIR": str(cache_dir)} if cache_dir else {}))


# --------------------------------------------------------------------------------------------
# servers


class TimedLoopback(LoopbackServer):
    """The loopback server, also logging (arrival, reply) times of chat requests.

    ``GET /v1/stats`` returns the count and the log; ``GET /v1/stats?reset=1`` also clears
    the log and the peak of requests in flight."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[float, float]] = []

    async def _respond(self, request_line: str, body: bytes) -> tuple[int, dict]:
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and "/stats" in path:
            out = {"requests": self.requests, "peak_in_flight": self.peak_in_flight,
                   "log": self.log}
            if "reset=1" in path:
                self.log, self.peak_in_flight = [], 0
            return 200, out
        arrived = time.time()
        status, payload = await super()._respond(request_line, body)
        if method == "POST" and path.endswith("/chat/completions"):
            self.log.append((arrived, time.time()))
        return status, payload


def serve_loopback(delay_s: float) -> None:
    serve_forever(TimedLoopback(delay_s=delay_s, keep_bodies=False))


class LoopbackProcess(ChildServer):
    """`TimedLoopback` in a child process (``--serve-loopback``)."""

    kind = "loopback"

    def __init__(self, delay_s: float) -> None:
        super().__init__([str(Path(__file__).resolve()), "--serve-loopback",
                          "--delay", str(delay_s)])
        self.delay_s = delay_s

    def _stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"{self.base_url}/stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def mark(self) -> int:
        """Start a measurement: the request count so far (and a fresh request log)."""
        return int(self._stats(reset=True)["requests"])

    def since(self, mark: int) -> dict[str, Any]:
        """Chat requests since ``mark``, with their (arrival, reply) times."""
        stats = self._stats()
        return {"requests": stats["requests"] - mark, "log": stats["log"],
                "peak_in_flight": stats["peak_in_flight"]}

    def describe(self) -> dict[str, Any]:
        return {"kind": "personae.testing.loopback (canned reply)", "delay_s": self.delay_s,
                "process": "separate"}



class LlamaServerProcess(LlamaServer):
    """``python -m llama_cpp.server`` with the bundled GGUF; its access log counts calls."""

    kind = "llama"

    def __init__(self, log_dir: Path, n_ctx: int = 4096) -> None:
        super().__init__(log_dir / "llama_server.log", alias=MODEL_NAME, n_ctx=n_ctx,
                         env=_child_env())

    def mark(self) -> int:
        return len(self.log.read_bytes())

    def since(self, mark: int) -> dict[str, Any]:
        """Chat requests since ``mark`` (from the access log) and the time llama.cpp spent on
        them (from its timing lines: prompt processing plus generation)."""
        text = self.log.read_bytes()[mark:].decode(errors="replace")
        busy_ms = sum(float(x) for x in LLAMA_TOTAL_RE.findall(text))
        prompt = [(float(ms), int(n)) for ms, n in LLAMA_PROMPT_RE.findall(text)]
        prompt_ms = sum(ms for ms, _ in prompt)
        prompt_tokens = sum(n for _, n in prompt)
        return {"requests": text.count("POST /v1/chat/completions"),
                "busy_s": round(busy_ms / 1000, 3),
                "prompt_tokens": prompt_tokens,
                "prompt_tokens_per_s": round(1000 * prompt_tokens / prompt_ms, 1)
                if prompt_ms else None}

    def describe(self) -> dict[str, Any]:
        import llama_cpp

        return {"kind": "llama_cpp.server", "llama_cpp": llama_cpp.__version__,
                "model": self.gguf.name, "n_ctx": self.n_ctx,
                "settings": "llama_cpp.server defaults otherwise (one request at a time)",
                "process": "separate"}


# --------------------------------------------------------------------------------------------
# the two ways to run the eval


def eval_settings(limit: int, max_tokens: int, spec: str, concurrency: int) -> dict[str, Any]:
    """The ``personae eval`` settings of a row, as CLI flags would give them."""
    return {"personas": "personagym", "limit": limit, "per_task": 1, "suites": ["fidelity"],
            "reliability_sample": 0, "model": spec, "judges": [spec],
            "max_tokens": max_tokens, "judge_max_tokens": max_tokens,
            "concurrency": concurrency}


def eval_command(settings: dict[str, Any], out: Path) -> list[str]:
    return [sys.executable, "-m", "personae", "eval",
            "--personas", settings["personas"], "--limit", str(settings["limit"]),
            "--per-task", str(settings["per_task"]), "--suite", ",".join(settings["suites"]),
            "--reliability-sample", str(settings["reliability_sample"]),
            "--model", settings["model"], "--judge", settings["judges"][0],
            "--max-tokens", str(settings["max_tokens"]),
            "--judge-max-tokens", str(settings["judge_max_tokens"]),
            "--concurrency", str(settings["concurrency"]), "--out", str(out)]


def run_personae(server: Any, settings: dict[str, Any], cache_dir: Path,
                 out: Path) -> dict[str, Any]:
    """One ``personae eval`` process, timed from spawn to exit."""
    mark = server.mark()
    t_wall0 = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(eval_command(settings, out), capture_output=True, text=True,
                          env=_child_env(cache_dir), check=False)
    wall = time.perf_counter() - t0
    t_wall1 = time.time()
    seen = server.since(mark)
    found = CALLS_RE.findall(proc.stderr)
    res: dict[str, Any] = {
        "wall_s": round(wall, 3), "exit_code": proc.returncode,
        "model_calls": int(found[-1][0]) if found else None,
        "cache_hits": int(found[-1][1]) if found else None,
        "server_requests": seen.pop("requests"),
    }
    if proc.returncode != 0 or not found:
        res["error"] = proc.stderr[-1500:]
    if "log" in seen:
        res["_log"] = seen.pop("log")
        res["_t"] = (t_wall0, t_wall1)
    res.update(seen)
    if "busy_s" in res:
        res["wall_minus_server_busy_s"] = round(wall - res["busy_s"], 3)
    return res


def build_run(settings: dict[str, Any], store_dir: Path) -> tuple[EvalRun, list[Probe]]:
    """personae's own view of the run (its config, personas, prompt builders) and the probes,
    without running anything."""
    config = build_config(None, **settings)
    run = EvalRun(config, RunStore(store_dir))
    probes: list[Probe] = []
    for persona in run.personas:
        found = benchmark_probes(persona, config.tasks, config.per_task)
        if found is None:
            raise RuntimeError(f"{persona.id} is not a PersonaGym benchmark-v1 persona")
        probes += found
    return run, probes


def sequential_loop(base_url: str, settings: dict[str, Any]) -> dict[str, Any]:
    """PersonaGym's way: one request at a time with the SDK's sync client, no cache."""
    import openai

    with tempfile.TemporaryDirectory() as tmp:
        run, probes = build_run(settings, Path(tmp) / "store")
        run.store.close()
    client = openai.OpenAI(api_key="unused", base_url=base_url, max_retries=0, timeout=600)
    requests = {"responses": 0, "score_examples": 0, "grading": 0}

    def call(stage: str, messages: Sequence[Message], params: ChatParams) -> str:
        requests[stage] += 1
        reply = client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            seed=params.effective_seed, **({"stop": list(params.stop)} if params.stop else {}))
        return reply.choices[0].message.content or ""

    # warm-up: the connection and the SDK's lazily imported modules (not counted, not timed)
    client.chat.completions.create(model=MODEL_NAME, max_tokens=1,
                                   messages=[{"role": "user", "content": "warm-up"}])
    subject = run.subject_params.model_copy(update={"sample_index": 0})
    judge = run.judge_params
    t0 = time.perf_counter()
    responses: dict[str, tuple[Probe, str, str]] = {}
    for probe in probes:
        persona = run.by_id[probe.persona_id]
        for condition in CONDITIONS:
            text = call("responses", run.subject_messages(persona, condition, probe.question),
                        subject)
            responses[response_key(probe, condition)] = (probe, condition, text)
    examples: dict[str, str] = {}
    for probe in probes:
        persona = run.by_id[probe.persona_id]
        examples[probe.id] = call("score_examples", personagym.score_examples_messages(
            describe(persona), probe.question, probe.task), judge)
    # grading: the engine's batching (per persona and condition, judge_batch rubrics each)
    groups: dict[tuple[str, str], list[tuple[Probe, str]]] = {}
    for probe, condition, text in responses.values():
        groups.setdefault((probe.persona_id, condition), []).append((probe, text))
    scores: list[float | None] = []
    size = run.config.judge_batch
    for group in groups.values():
        for start in range(0, len(group), size):
            batch = group[start:start + size]
            items = [personagym.GradingItem(
                probe.task, describe(run.by_id[probe.persona_id]), probe.question, text,
                personagym.order_examples(examples[probe.id], reverse=False))
                for probe, text in batch]
            reply = call("grading", personagym.grading_messages(items), judge)
            scores += personagym.parse_batch_scores(reply, len(batch))
    wall = time.perf_counter() - t0
    client.close()
    total = sum(requests.values())
    return {"wall_s": round(wall, 3), "requests": total, "by_stage": requests,
            "rps": round(total / wall, 2), "probes": len(probes),
            "_responses": {k: v[2] for k, v in responses.items()}}


def same_responses(out: Path, baseline: dict[str, str]) -> dict[str, int]:
    """How many subject responses of the personae run equal the baseline's word for word
    (same request bodies and seeds; llama.cpp may still drift on float rounding)."""
    store = RunStore(out)
    try:
        mine = {k: r["text"] for k, r in store.items("response")}
    finally:
        store.close()
    return {"equal": sum(mine.get(k) == v for k, v in baseline.items()),
            "of": len(baseline)}


def timeline(first: dict[str, Any], stage_calls: dict[str, int], concurrency: int,
             delay_s: float) -> dict[str, Any] | None:
    """Where a personae run's time went, from the loopback server's request log. Stages run
    one after another, so the requests' arrival order splits them."""
    log = sorted(first.get("_log") or [])
    if not log or len(log) != sum(stage_calls.values()):
        return None
    t_start, t_end = first["_t"]
    out: dict[str, Any] = {"startup_s": round(log[0][0] - t_start, 3)}
    stages = {}
    i = 0
    prev_end = None
    for name, n in stage_calls.items():
        chunk = log[i:i + n]
        i += n
        begin, end = chunk[0][0], max(r for _, r in chunk)
        stages[name] = {
            "calls": n, "span_s": round(end - begin, 3),
            "floor_s": round(math.ceil(n / concurrency) * delay_s, 3),
            "gap_before_s": round(begin - prev_end, 3) if prev_end is not None else None,
            "mean_latency_ms": round(1000 * statistics.fmean(r - a for a, r in chunk), 1),
        }
        prev_end = end
    out["stages"] = stages
    out["tail_s"] = round(t_end - prev_end, 3)
    out["requests_window_s"] = round(prev_end - log[0][0], 3)
    return out


def run_sequential(server: Any, settings: dict[str, Any]) -> dict[str, Any]:
    mark = server.mark()
    seq = sequential_loop(server.base_url, settings)
    seen = server.since(mark)
    seq["server_requests"] = seen.pop("requests") - 1  # minus the warm-up
    seen.pop("log", None)
    seq.update(seen)
    if "busy_s" in seq:
        seq["wall_minus_server_busy_s"] = round(seq["wall_s"] - seq["busy_s"], 3)
    return seq


def run_personae_round(server: Any, settings: dict[str, Any], work: Path,
                       name: str) -> dict[str, Any]:
    """First run (fresh cache, fresh run dir), the same command again, and a run into a
    fresh run dir with the same cache."""
    cache, o1, o2 = work / f"{name}-cache", work / f"{name}-out", work / f"{name}-fresh"
    r = {"first": run_personae(server, settings, cache, o1)}
    r["rerun_same_out"] = run_personae(server, settings, cache, o1)
    r["rerun_fresh_out"] = run_personae(server, settings, cache, o2)
    r["_out"] = o1
    r["_cleanup"] = (cache, o1, o2)
    return r


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), 3)


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean wall time (and server busy time) over rounds, with each round's numbers."""
    rounds = [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs]
    out: dict[str, Any] = {"wall_s": _mean([r["wall_s"] for r in rounds])}
    for key in ("busy_s", "wall_minus_server_busy_s", "prompt_tokens_per_s"):
        if all(r.get(key) is not None for r in rounds):
            out[key] = _mean([r[key] for r in rounds])
    out["rounds"] = rounds
    return out


def bench_server(server: Any, label: str, limit: int, max_tokens: int, concurrency: int,
                 rounds: int, work: Path, target_speedup: float | None) -> dict[str, Any]:
    """``rounds`` rounds of the sequential loop and personae (first run and both re-runs),
    alternating which goes first (ABBA...) so that drift in the machine's speed hits both
    alike. Ratios are of totals over the rounds."""
    spec = f"openai:{MODEL_NAME}@{server.base_url}"
    settings = eval_settings(limit, max_tokens, spec, concurrency)
    out: dict[str, Any] = {"server": server.describe(), "personas": limit, "per_task": 1,
                           "conditions": list(CONDITIONS), "judges": 1,
                           "max_tokens": max_tokens, "judge_max_tokens": max_tokens,
                           "concurrency": concurrency, "rounds": rounds,
                           "command": " ".join(eval_command(settings, Path("OUT"))[1:])}
    seqs: list[dict[str, Any]] = []
    pers: list[dict[str, Any]] = []
    for k in range(rounds):
        for what in (("seq", "personae") if k % 2 == 0 else ("personae", "seq")):
            if what == "seq":
                seq = run_sequential(server, settings)
                seqs.append(seq)
                print(f"[{label}] round {k + 1}: sequential loop: {seq['requests']} requests "
                      f"in {seq['wall_s']:.2f} s", flush=True)
                continue
            r = run_personae_round(server, settings, work, f"{label}{k}")
            pers.append(r)
            a, b, c = r["first"], r["rerun_same_out"], r["rerun_fresh_out"]
            print(f"[{label}] round {k + 1}: personae first {a['wall_s']:.2f} s "
                  f"({a['model_calls']} calls), re-run {b['wall_s']:.2f} s "
                  f"({b['model_calls']} calls), fresh-out re-run {c['wall_s']:.2f} s "
                  f"({c['model_calls']} calls, {c['cache_hits']} cache hits)", flush=True)
            for key in ("first", "rerun_same_out", "rerun_fresh_out"):
                if r[key].get("error"):
                    print(f"[{label}]   {key} failed: {r[key]['error'][-300:]}", flush=True)
        if k == 0 and pers[0]["first"]["exit_code"] == 0:
            out["same_subject_responses_as_baseline"] = same_responses(
                pers[0]["_out"], seqs[0]["_responses"])
        for path in pers[-1].pop("_cleanup"):
            shutil.rmtree(path, ignore_errors=True)

    first_seq = seqs[0]
    out["probes"] = first_seq["probes"]
    out["calls"] = {**first_seq["by_stage"], "total": first_seq["requests"]}
    out["sequential"] = _summarise(seqs)
    firsts = [r["first"] for r in pers]
    out["personae_first"] = _summarise(firsts)
    median = sorted(firsts, key=lambda r: r["wall_s"])[len(firsts) // 2]
    tl = timeline(median, first_seq["by_stage"], concurrency,
                  server.describe().get("delay_s", 0))
    if tl:
        out["personae_first"]["timeline_of_median_round"] = tl
    total_seq = sum(r["wall_s"] for r in seqs)
    total_first = sum(r["wall_s"] for r in firsts)
    out["ratio_vs_sequential"] = round(total_seq / total_first, 2)
    for key in ("rerun_same_out", "rerun_fresh_out"):
        runs = [r[key] for r in pers]
        entry = _summarise(runs)
        entry["model_calls"] = sum(r["model_calls"] or 0 for r in runs)
        entry["server_requests"] = sum(r["server_requests"] for r in runs)
        entry["share_of_first"] = round(sum(r["wall_s"] for r in runs) / total_first, 4)
        entry["zero_model_calls"] = (entry["server_requests"] == 0 and all(
            r["model_calls"] == 0 and r["exit_code"] == 0 for r in runs))
        out[key] = entry
    n = first_seq["requests"]
    out["calls_match"] = (all(r["requests"] == n and r["server_requests"] == n for r in seqs)
                          and all(r["model_calls"] == n and r["server_requests"] == n
                                  for r in firsts))
    targets: dict[str, Any] = {}
    if target_speedup is not None:
        targets["speedup"] = {"target": target_speedup,
                              "met": out["ratio_vs_sequential"] >= target_speedup}
    for key in ("rerun_same_out", "rerun_fresh_out"):
        targets[f"{key}_zero_calls"] = {"met": out[key]["zero_model_calls"]}
        targets[f"{key}_share"] = {"target": TARGET_RERUN_SHARE,
                                   "met": out[key]["share_of_first"] < TARGET_RERUN_SHARE}
    out["targets"] = targets
    return out


# --------------------------------------------------------------------------------------------


def _import_time_s() -> float:
    """Seconds for a fresh interpreter to import what ``personae eval`` imports (the CLI,
    the eval engine and what it pulls in, the openai SDK): the floor of any eval run.
    Best of three."""
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c",
                        "import personae.cli, personae.evals.run, personae.report, openai"],
                       env=_child_env(), check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return round(best, 3)


def print_table(res: dict[str, Any]) -> None:
    print()
    print(f"{'server':<24}{'probes':>7}{'calls':>7}{'seq s':>9}{'personae s':>12}{'ratio':>8}"
          f"{'re-run s':>10}{'share':>8}{'calls':>7}{'fresh-out s':>13}{'share':>8}{'calls':>7}")
    for name, r in res["servers"].items():
        if "error" in r:
            print(f"{name:<24} failed: {r['error'][:80]}")
            continue
        a, b = r["rerun_same_out"], r["rerun_fresh_out"]
        print(f"{name:<24}{r['probes']:>7}{r['calls']['total']:>7}"
              f"{r['sequential']['wall_s']:>9.2f}{r['personae_first']['wall_s']:>12.2f}"
              f"{r['ratio_vs_sequential']:>7.2f}x{a['wall_s']:>10.2f}{a['share_of_first']:>8.1%}"
              f"{a['model_calls']!s:>7}{b['wall_s']:>13.2f}{b['share_of_first']:>8.1%}"
              f"{b['model_calls']!s:>7}")
    print("  seq: PersonaGym-style loop (sync SDK, one request at a time, no cache); personae: "
          "`personae eval` process, fresh cache;\n  re-run: same command again (same cache and "
          "run dir); fresh-out: same cache, new run dir; share: of personae's first run")
    for name, r in res["servers"].items():
        if "error" in r:
            continue
        tl = r["personae_first"].get("timeline_of_median_round")
        if tl:
            parts = ", ".join(f"{s} {v['span_s']:.2f} s (floor {v['floor_s']:.2f}, gap before "
                              f"{v['gap_before_s'] if v['gap_before_s'] is not None else 0:.2f})"
                              for s, v in tl["stages"].items())
            print(f"  {name} personae timeline: start-up {tl['startup_s']:.2f} s, {parts}, "
                  f"tail {tl['tail_s']:.2f} s")
        seq, first = r["sequential"], r["personae_first"]
        if "busy_s" in seq and "busy_s" in first:
            print(f"  {name} per round: llama.cpp busy {seq['busy_s']:.1f} s under the loop "
                  f"({seq.get('prompt_tokens_per_s')} prompt tok/s), {first['busy_s']:.1f} s "
                  f"under personae ({first.get('prompt_tokens_per_s')} prompt tok/s); wall "
                  f"minus busy: loop {seq['wall_minus_server_busy_s']:.2f} s, personae "
                  f"{first['wall_minus_server_busy_s']:.2f} s")
        met = ", ".join(f"{k} {'met' if v['met'] else 'NOT met'}"
                        for k, v in r["targets"].items())
        print(f"  {name} targets: {met}; calls match the loop: {r['calls_match']}")


# Versions recorded with the results.
ENV_PACKAGES = ("openai", "llama_cpp")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer probes")
    ap.add_argument("--limit", type=int, help="personas against the loopback server (x5 "
                    "probes; default 40 = 200 probes, --quick 8)")
    ap.add_argument("--max-tokens", type=int, default=16, help="subject and judge reply "
                    "limit against the loopback server (it ignores it; default 16)")
    ap.add_argument("--llama-limit", type=int, help="personas against llama_cpp.server "
                    "(default 2 = 10 probes, --quick 1)")
    ap.add_argument("--llama-max-tokens", type=int, help="subject and judge reply limit "
                    "against llama_cpp.server (default 16, --quick 4)")
    ap.add_argument("--concurrency", type=int, default=64,
                    help="personae eval --concurrency (default 64)")
    ap.add_argument("--rounds", type=int, help="rounds (loop and personae, alternating) "
                    "against the loopback server (default 3, --quick 1)")
    ap.add_argument("--llama-rounds", type=int, help="rounds against llama_cpp.server "
                    "(default 2, --quick 1)")
    ap.add_argument("--skip-loopback", action="store_true")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "eval_throughput.json")
    ap.add_argument("--serve-loopback", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=DELAY_S, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_loopback:  # the loopback server's own process (see LoopbackProcess)
        serve_loopback(args.delay)
        return 0
    limit = args.limit or (8 if args.quick else 40)
    llama_limit = args.llama_limit or (1 if args.quick else 2)
    llama_max_tokens = args.llama_max_tokens or (4 if args.quick else 16)
    rounds = args.rounds or (1 if args.quick else 3)
    llama_rounds = args.llama_rounds or (1 if args.quick else 2)

    results: dict[str, Any] = {"quick": args.quick, "environment": environment(*ENV_PACKAGES),
                               "targets": {"speedup_vs_sequential_50ms": TARGET_SPEEDUP,
                                           "cached_rerun_share_of_first": TARGET_RERUN_SHARE},
                               "personae_eval_import_s": _import_time_s(), "servers": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="personae-eval-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_loopback:
            try:
                with LoopbackProcess(DELAY_S) as server:
                    print(f"loopback server at {server.base_url}, {DELAY_S * 1000:.0f} ms per "
                          f"reply; {limit * 5} probes", flush=True)
                    results["servers"]["loopback_50ms"] = bench_server(
                        server, "loopback", limit, args.max_tokens, args.concurrency,
                        rounds, work, TARGET_SPEEDUP)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next row
                results["servers"]["loopback_50ms"] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"loopback row failed: {exc}", flush=True)
        if not args.skip_llama:
            try:
                with LlamaServerProcess(work) as server:
                    print(f"llama_cpp.server at {server.base_url}; {llama_limit * 5} probes, "
                          f"max tokens {llama_max_tokens}", flush=True)
                    # page the weights in before anything is timed
                    warm = urllib.request.Request(
                        f"{server.base_url}/chat/completions", method="POST",
                        headers={"content-type": "application/json"},
                        data=json.dumps({"model": MODEL_NAME, "max_tokens": 4, "messages": [
                            {"role": "user", "content": "Hello"}]}).encode())
                    urllib.request.urlopen(warm, timeout=120).read()
                    results["servers"]["llama_cpp_server"] = bench_server(
                        server, "llama", llama_limit, llama_max_tokens, args.concurrency,
                        llama_rounds, work, None)
            except Exception as exc:  # noqa: BLE001 - report it in the results
                results["servers"]["llama_cpp_server"] = {"error": f"{type(exc).__name__}: "
                                                                   f"{exc}"}
                print(f"llama_cpp.server row failed: {exc}", flush=True)
    return finish(args.out, results, started, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
