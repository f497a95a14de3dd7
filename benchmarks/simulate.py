"""Simulation benchmark: conversation throughput against concurrency, and memory per
conversation against conversation length.

(a) Throughput: ``run_simulation`` (the public API) holds 100 conversations (the 20 sample
    personas x 5, each with the built-in simulated user) of 10 turns against the loopback
    test server (50 ms per reply, ``varied=True`` so that no conversation stops early as a
    repetition), at concurrency 1 and 32. Target: at concurrency 32, at least 20x the turns/s
    of concurrency 1. Every run must store 1,000 ``turn`` records and 100 ``end`` records
    with stop reason ``max_turns``, or the benchmark fails. Each run is split into phases
    from the run store's own timestamps: set-up (until the first turn starts), the
    conversations (until the last turn/end record is stored) and what follows (summary,
    transcripts); the target is about the conversations (the engine). The engine's
    CPU time per turn is read off a sampler thread. 100 conversations at concurrency 32 go in
    4 waves (32, 32, 32, 4), so even a zero-cost client gets at most 25x: the floor of each
    run (waves x turns x 50 ms) is reported next to it. One more run at concurrency 32 has
    the server reply with longer text (64 words, about the few sentences a real persona
    says), and the repetition check's cost per turn is timed by reply length (difflib over
    words; over characters it was quadratic in the reply's length and cost 18 ms a turn at
    64 words). Last, the same 100 conversations run against an in-process model that sleeps
    50 ms and replies like the server: the engine with no HTTP client under it, at
    concurrency 1 and 32, which tells personae's share of the cost from the client's.
(b) Memory: peak Python memory (tracemalloc, started after a warm-up request) of the engine
    alone (``SimKind.converse``) holding 8 conversations at once for 10, 40 and 160 turns
    against a 5 ms loopback server replying with 24 varied words, with a memory window of 8
    turns and with no window (0: the whole history is held and sent). Reported: peak bytes
    per conversation, the growth per turn between 40 and 160 turns (past the window) and a
    least-squares slope over all three, and the largest request the server saw (messages
    and bytes). With a window the growth per turn should be about 0; without one, each turn
    adds its own text and the request that carries it. (tracemalloc slows the client about
    sevenfold, which is what keeps the number of conversations small.)

    PYTHONPATH=src python benchmarks/simulate.py            # full run, about 3 minutes
    PYTHONPATH=src python benchmarks/simulate.py --quick    # smoke run, about 1 minute

Results go to benchmarks/results/simulate.json (``--out``) and a table is printed. The
loopback server runs in its own process (a thread would share the client's GIL), every
measurement in a fresh Python process, with no response cache. Timing starts after the
imports (``openai`` included, which the backend would otherwise import on the first request).
The machine is not isolated: the load average at the start and end is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import hashlib
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
# benchmarks are scripts, not a package: _worker is found on the path above
from _worker import (  # noqa: E402
    ChildServer,
    environment,
    finish,
    run_worker,
    serve_forever,
)

if (ROOT / "src" / "personae").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from personae.sim.termination import is_repetition  # noqa: E402
from personae.testing.loopback import LoopbackServer  # noqa: E402

DELAY_S = 0.05  # the throughput server's reply delay
MEMORY_DELAY_S = 0.005  # fast, but every conversation still has a request in flight
TARGET_SPEEDUP_C32 = 20.0
TURNS = 10
MODEL_CONCURRENCY = 32  # the openai backend's own limit (?concurrency=); the run's is --concurrency
LONG_WORDS = 64  # the long-reply row's reply length
MEMORY_WORDS = 24
MEMORY_WINDOW = 8
WORDS = ("market river bread engine winter letter garden ticket harbour morning cousin radio "
         "bridge lantern pepper tractor violin kettle ladder pocket thunder village mirror "
         "saddle orchard compass blanket chimney meadow parcel stone field").split()


# --------------------------------------------------------------------------------------------
# the server


def long_reply(body: bytes, words: int) -> str:
    """A reply of ``words`` words picked by a hash of the request: the same request always
    gets the same reply, the next turn a different one."""
    picks = hashlib.shake_256(body).digest(words)
    text = " ".join(WORDS[b % len(WORDS)] for b in picks)
    return f"The {text}."


class StatsLoopback(LoopbackServer):
    """The varied loopback server, optionally with long replies, and counters that
    ``GET /v1/stats`` returns (``?reset=1`` also zeroes them): requests, peak in flight, and
    the largest request body since the last reset (its bytes, and its messages)."""

    def __init__(self, *, reply_words: int = 0, **kwargs: Any) -> None:
        super().__init__(keep_bodies=False, varied=True, **kwargs)
        self.reply_words = reply_words
        self.max_messages = self.max_body_bytes = 0

    async def _respond(self, request_line: str, body: bytes) -> tuple[int, dict]:
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and "/stats" in path:
            out = {"requests": self.requests, "peak_in_flight": self.peak_in_flight,
                   "max_messages": self.max_messages, "max_body_bytes": self.max_body_bytes}
            if "reset=1" in path:
                self.requests = self.peak_in_flight = self.max_messages = 0
                self.max_body_bytes = 0
            return 200, out
        if len(body) > self.max_body_bytes:
            self.max_body_bytes = len(body)
            # Each message has one "role" key; inside a content string the quotes are escaped.
            self.max_messages = body.count(b'"role"')
        status, payload = await super()._respond(request_line, body)
        if status == 200 and self.reply_words and "choices" in payload:
            payload["choices"][0]["message"]["content"] = long_reply(body, self.reply_words)
        return status, payload


def serve(delay_s: float, reply_words: int) -> None:
    serve_forever(StatsLoopback(delay_s=delay_s, reply_words=reply_words))


class ServerProcess(ChildServer):
    """`StatsLoopback` in a child process (``--serve``)."""

    def __init__(self, delay_s: float, reply_words: int = 0) -> None:
        super().__init__([str(Path(__file__).resolve()), "--serve", "--delay", str(delay_s),
                          "--reply-words", str(reply_words)])

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"{self.base_url}/stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def measure(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """One worker run, with what the server saw of it."""
        self.stats(reset=True)
        cpu0 = self.cpu_s()
        res = _run_worker(name, base_url=self.base_url, **kwargs)
        seen = self.stats()
        res["server"] = {**seen, "cpu_s": round(self.cpu_s() - cpu0, 3)}
        return res


# --------------------------------------------------------------------------------------------
# (a) throughput


class CpuSampler(threading.Thread):
    """(wall, process CPU) every ``every_s``, so that the CPU used in a stretch of wall time
    can be read off afterwards without hooking into the code under test."""

    def __init__(self, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), time.process_time()))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append((time.time(), time.process_time()))

    def cpu_between(self, t0: float, t1: float) -> float:
        walls = [w for w, _ in self.samples]

        def at(t: float) -> float:
            i = min(max(bisect.bisect_left(walls, t), 0), len(walls) - 1)
            return self.samples[i][1]

        return at(t1) - at(t0)


def _store_phases(run_dir: Path) -> dict[str, Any]:
    """Record counts, stop reasons, when the first turn started and when the last turn or
    end record was stored (the store's own ``created`` column)."""
    from personae.runtime.store import STORE_FILE

    db = sqlite3.connect(run_dir / STORE_FILE)
    try:
        counts = dict(db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind").fetchall())
        last = db.execute("SELECT MAX(created) FROM records WHERE kind IN ('turn', 'end')"
                          ).fetchone()[0]
        started = [json.loads(d)["started"] for (d,) in
                   db.execute("SELECT data FROM records WHERE kind = 'turn'")]
        reasons: dict[str, int] = {}
        for (d,) in db.execute("SELECT data FROM records WHERE kind = 'end'"):
            reason = json.loads(d)["stop_reason"]
            reasons[reason] = reasons.get(reason, 0) + 1
    finally:
        db.close()
    return {"counts": counts, "stop_reasons": reasons,
            "first_turn_started": min(started) if started else None, "last_stored": last}


def sleeping_model() -> Any:
    """An in-process model that answers like the loopback server (same delay, same varied
    replies) without any HTTP: what the engine costs with no client library under it."""
    from personae.models.scripted import ScriptedModel
    from personae.testing.loopback import varied_reply

    class Sleeping(ScriptedModel):
        async def chat(self, messages: Any, params: Any) -> Any:
            await asyncio.sleep(DELAY_S)
            return await super().chat(messages, params)

    return Sleeping(lambda msgs, _: varied_reply({"messages": [[m.role, m.content]
                                                               for m in msgs]}),
                    name="sleeping", max_concurrency=MODEL_CONCURRENCY)


def worker_throughput(base_url: str, concurrency: int, limit: int, conversations: int,
                      turns: int, in_process: bool = False) -> dict[str, Any]:
    """``run_simulation`` timed whole and split into phases; fails unless every conversation
    took all its turns. ``in_process``: against `sleeping_model` instead of the server."""
    import openai  # noqa: F401  - the backend imports it on the first request: not timed

    from personae.sim import SimConfig, run_simulation

    model = sleeping_model() if in_process else None
    spec = ("scripted:sleeping" if in_process
            else f"openai:loop@{base_url}?concurrency={MODEL_CONCURRENCY}")
    cfg = SimConfig(personas="sample", limit=limit, conversations=conversations, turns=turns,
                    model=spec, judge=None, metrics=["leak"], progress="off",
                    concurrency=concurrency)
    with tempfile.TemporaryDirectory(prefix="personae-sim-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        sampler = CpuSampler()
        sampler.start()
        t0 = time.time()
        result = run_simulation(cfg, run_dir, use_cache=False, model=model)
        t1 = time.time()
        sampler.stop()
        phases = _store_phases(run_dir)
    n_conv = limit * conversations
    want = {"turn": n_conv * turns, "end": n_conv}
    got = {k: phases["counts"].get(k, 0) for k in want}
    if (got != want or phases["stop_reasons"] != {"max_turns": n_conv} or result.failures
            or result.model_calls != n_conv * turns):
        raise RuntimeError(f"concurrency {concurrency}: not every conversation took its "
                           f"{turns} turns: records {got} (want {want}), stop reasons "
                           f"{phases['stop_reasons']}, {result.model_calls} model calls, "
                           f"failures {result.failures[:3]}")
    first, last = phases["first_turn_started"], phases["last_stored"]
    engine_s = last - first
    engine_cpu = sampler.cpu_between(first, last)
    n_turns = want["turn"]
    waves = math.ceil(n_conv / concurrency)
    return {
        "concurrency": concurrency, "conversations": n_conv, "turns": n_turns,
        "wall_s": round(t1 - t0, 3), "setup_s": round(first - t0, 3),
        "engine_s": round(engine_s, 3), "after_engine_s": round(t1 - last, 3),
        "engine_turns_per_s": round(n_turns / engine_s, 1),
        "whole_turns_per_s": round(n_turns / (t1 - t0), 1),
        "engine_cpu_ms_per_turn": round(1000 * engine_cpu / n_turns, 3),
        "cpu_s": round(sampler.cpu_between(t0, t1), 3),
        "floor_s": round(waves * turns * DELAY_S, 3), "waves": waves,
        "records": got, "stop_reasons": phases["stop_reasons"],
        "model_calls": result.model_calls,
    }


def repetition_check_ms(word_counts: Sequence[int], repeats: int = 20) -> dict[str, Any]:
    """CPU per turn of the engine's repetition check (each turn against the two before it)
    for replies of each length, in this process."""
    out: dict[str, Any] = {}
    for n in word_counts:
        texts = [long_reply(f"{n}-{k}".encode(), n) for k in range(3)]
        t = time.process_time()
        for _ in range(repeats):
            is_repetition(texts[2], texts[:2])
        out[str(n)] = {"chars": len(texts[0]),
                       "ms": round(1000 * (time.process_time() - t) / repeats, 3)}
    return out


def bench_throughput(limit: int, conversations: int, c32_runs: int,
                     long_words: int) -> dict[str, Any]:
    settings = {"limit": limit, "conversations": conversations, "turns": TURNS}
    n_conv = limit * conversations
    out: dict[str, Any] = {
        "server": {"kind": "personae.testing.loopback (varied replies)", "delay_s": DELAY_S,
                   "process": "separate"},
        "personas": "sample", "conversations": n_conv, "turns_per_conversation": TURNS,
        "model": f"openai:loop@URL?concurrency={MODEL_CONCURRENCY}", "judge": None,
        "metrics": ["leak"], "use_cache": False, "runs": []}
    # 32, 1, 32...: the cheap side before and after the slow one, so drift hits both
    order = [32, 1] + [32] * max(0, c32_runs - 1)
    with ServerProcess(DELAY_S) as server:
        print(f"(a) loopback server at {server.base_url}, {DELAY_S * 1000:.0f} ms per reply; "
              f"{n_conv} conversations x {TURNS} turns", flush=True)
        for c in order:
            r = server.measure("throughput", concurrency=c, **settings)
            out["runs"].append(r)
            print(f"    concurrency {c:>2}: {r['wall_s']:.2f} s whole, engine {r['engine_s']:.2f} "
                  f"s ({r['engine_turns_per_s']:.1f} turns/s, floor {r['floor_s']:.2f} s), "
                  f"{r['engine_cpu_ms_per_turn']:.2f} CPU ms/turn, peak in flight "
                  f"{r['server']['peak_in_flight']}", flush=True)
    for c in (1, 32):
        runs = [r for r in out["runs"] if r["concurrency"] == c]
        out[f"c{c}"] = _totals(runs)
    c1, c32 = out["c1"], out["c32"]
    out["ratio_engine"] = round(c32["engine_turns_per_s"] / c1["engine_turns_per_s"], 2)
    out["ratio_whole"] = round(c32["whole_turns_per_s"] / c1["whole_turns_per_s"], 2)
    out["ratio_if_no_overhead"] = round(c1["floor_s"] / c32["floor_s"], 2)
    out["target"] = {"speedup_c32": TARGET_SPEEDUP_C32,
                     "met": out["ratio_engine"] >= TARGET_SPEEDUP_C32}

    with ServerProcess(DELAY_S, reply_words=long_words) as server:
        r = server.measure("throughput", concurrency=32, **settings)
    r["reply_words"] = long_words
    out["c32_long_replies"] = r
    print(f"    concurrency 32, {long_words}-word replies: engine {r['engine_s']:.2f} s "
          f"({r['engine_turns_per_s']:.1f} turns/s), {r['engine_cpu_ms_per_turn']:.2f} CPU "
          "ms/turn", flush=True)
    # The same runs with no HTTP client under the engine: which part of the gap is personae's.
    inproc = {}
    for c in (32, 1):
        r = _run_worker("throughput", base_url="", concurrency=c, in_process=True, **settings)
        inproc[f"c{c}"] = r
        print(f"    in-process model, concurrency {c:>2}: engine {r['engine_s']:.2f} s "
              f"({r['engine_turns_per_s']:.1f} turns/s), {r['engine_cpu_ms_per_turn']:.2f} CPU "
              "ms/turn", flush=True)
    inproc["ratio_engine"] = round(inproc["c32"]["engine_turns_per_s"]
                                   / inproc["c1"]["engine_turns_per_s"], 2)
    out["in_process"] = inproc
    out["repetition_check_ms_per_turn"] = repetition_check_ms((12, 32, 64, 96))
    return out


def _totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Turns/s over all runs of one concurrency (total turns / total seconds)."""
    turns = sum(r["turns"] for r in runs)
    engine = sum(r["engine_s"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    return {"runs": len(runs), "wall_s": round(wall / len(runs), 3),
            "engine_s": round(engine / len(runs), 3),
            "setup_s": round(statistics.fmean(r["setup_s"] for r in runs), 3),
            "after_engine_s": round(statistics.fmean(r["after_engine_s"] for r in runs), 3),
            "engine_turns_per_s": round(turns / engine, 1),
            "whole_turns_per_s": round(turns / wall, 1),
            "engine_cpu_ms_per_turn": round(statistics.fmean(
                r["engine_cpu_ms_per_turn"] for r in runs), 3),
            "floor_s": runs[0]["floor_s"],
            "peak_in_flight": max(r["server"]["peak_in_flight"] for r in runs)}


# --------------------------------------------------------------------------------------------
# (b) memory


def worker_memory(base_url: str, turns: int, window: int, limit: int) -> dict[str, Any]:
    """Peak traced memory of the engine holding ``limit`` conversations at once."""
    import openai  # noqa: F401  - imported before anything is traced

    from personae.models import ChatParams, Message
    from personae.runtime.spine import Display, Outcome, RunContext
    from personae.runtime.store import RunStore
    from personae.sim import SimConfig
    from personae.sim.run import SimKind

    cfg = SimConfig(personas="sample", limit=limit, conversations=1, turns=turns,
                    window=window, model=f"openai:loop@{base_url}?concurrency={limit}",
                    judge=None, metrics=["leak"], progress="off", concurrency=limit)
    run = SimKind(cfg)
    outcome = Outcome()
    mem: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="personae-sim-mem-") as tmp:
        store = RunStore(tmp)
        store.bind_config(run.identity)

        async def main() -> None:
            try:
                # The SDK client and its first connection, so that one-off set-up is not
                # counted as the conversations' memory.
                await run.model.chat([Message(role="user", content="warm-up")],
                                     ChatParams(max_tokens=8))
                gc.collect()
                tracemalloc.start()
                mem["baseline"] = tracemalloc.get_traced_memory()[0]
                await run.converse(RunContext(store, None, outcome, Display(quiet=True)))
                mem["current"], mem["peak"] = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            finally:
                await run.aclose()

        t = time.perf_counter()
        asyncio.run(main())
        wall = time.perf_counter() - t
        counts = store.counts()
        reasons = [rec["stop_reason"] for _, rec in store.items("end")]
        store.close()
    if (counts.get("turn") != limit * turns or counts.get("end") != limit
            or set(reasons) != {"max_turns"} or outcome.failures):
        raise RuntimeError(f"memory run ({turns} turns, window {window}): not every "
                           f"conversation took its turns: {counts}, stop reasons "
                           f"{sorted(set(reasons))}, failures {outcome.failures[:3]}")
    grown = mem["peak"] - mem["baseline"]
    return {"turns": turns, "window": window, "conversations": limit,
            "peak_traced_bytes": grown, "peak_bytes_per_conversation": round(grown / limit),
            "retained_after_bytes": mem["current"] - mem["baseline"], "wall_s": round(wall, 2)}


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)


def bench_memory(conversations: int, turn_counts: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "server": {"kind": "personae.testing.loopback (varied replies)",
                   "delay_s": MEMORY_DELAY_S, "reply_words": MEMORY_WORDS,
                   "process": "separate"},
        "measure": "tracemalloc peak during SimKind.converse minus the traced memory before "
                   "it (after one warm-up request)",
        "conversations_at_once": conversations, "windows": {}}
    with ServerProcess(MEMORY_DELAY_S, reply_words=MEMORY_WORDS) as server:
        print(f"(b) loopback server at {server.base_url}, {MEMORY_DELAY_S * 1000:.0f} ms per "
              f"reply of {MEMORY_WORDS} words; {conversations} conversations at once", flush=True)
        for window in (MEMORY_WINDOW, 0):
            rows = []
            for turns in turn_counts:
                r = server.measure("memory", turns=turns, window=window, limit=conversations)
                srv = r.pop("server")
                r.update(largest_request_messages=srv["max_messages"],
                         largest_request_bytes=srv["max_body_bytes"],
                         server_peak_in_flight=srv["peak_in_flight"],
                         server_requests=srv["requests"] - 1)  # minus the warm-up
                rows.append(r)
                print(f"    window {window}, {turns:>3} turns: "
                      f"{r['peak_bytes_per_conversation'] / 1024:.1f} KiB per conversation, "
                      f"largest request {r['largest_request_messages']} messages "
                      f"({r['largest_request_bytes'] / 1024:.1f} KiB), "
                      f"{r['wall_s']:.1f} s", flush=True)
            xs = [r["turns"] for r in rows]
            ys = [r["peak_bytes_per_conversation"] for r in rows]
            entry: dict[str, Any] = {"rows": rows,
                                     "slope_bytes_per_turn_fit": round(_slope(xs, ys), 1)}
            if len(rows) >= 2:
                a, b = rows[-2], rows[-1]
                entry["growth_bytes_per_turn_last_two"] = round(
                    (b["peak_bytes_per_conversation"] - a["peak_bytes_per_conversation"])
                    / (b["turns"] - a["turns"]), 1)
            out["windows"][str(window)] = entry
    return out


def _run_worker(name: str, **kwargs: Any) -> dict[str, Any]:
    """One measurement in a fresh Python process; its JSON result (the last stdout line)."""
    return run_worker(__file__, name, **kwargs)


WORKERS = {"throughput": worker_throughput, "memory": worker_memory}


# --------------------------------------------------------------------------------------------


def print_table(res: dict[str, Any]) -> None:
    a = res.get("throughput")
    if a:
        print(f"\n(a) {a['conversations']} conversations x {a['turns_per_conversation']} turns, "
              f"loopback {DELAY_S * 1000:.0f} ms, varied replies, no cache")
        print(f"{'concurrency':<13}{'runs':>5}{'wall s':>8}{'setup s':>9}{'engine s':>10}"
              f"{'after s':>9}{'floor s':>9}{'turns/s':>9}{'(whole)':>9}{'CPU ms/turn':>13}"
              f"{'in flight':>11}")
        for c in (1, 32):
            r = a[f"c{c}"]
            print(f"{c:<13}{r['runs']:>5}{r['wall_s']:>8.2f}{r['setup_s']:>9.2f}"
                  f"{r['engine_s']:>10.2f}{r['after_engine_s']:>9.2f}{r['floor_s']:>9.2f}"
                  f"{r['engine_turns_per_s']:>9.1f}{r['whole_turns_per_s']:>9.1f}"
                  f"{r['engine_cpu_ms_per_turn']:>13.2f}{r['peak_in_flight']:>11}")
        r = a["c32_long_replies"]
        print(f"{'32, ' + str(r['reply_words']) + ' words':<13}{1:>5}{r['wall_s']:>8.2f}"
              f"{r['setup_s']:>9.2f}{r['engine_s']:>10.2f}{r['after_engine_s']:>9.2f}"
              f"{r['floor_s']:>9.2f}{r['engine_turns_per_s']:>9.1f}{r['whole_turns_per_s']:>9.1f}"
              f"{r['engine_cpu_ms_per_turn']:>13.2f}{r['server']['peak_in_flight']:>11}")
        print("  engine: first turn started to last turn stored; setup: before that; after: "
              "summary and transcripts; floor: waves x turns x 50 ms")
        print(f"  ratio c32/c1 (engine turns/s) {a['ratio_engine']:.2f}x, whole run "
              f"{a['ratio_whole']:.2f}x, with zero overhead {a['ratio_if_no_overhead']:.2f}x; "
              f"target >= {TARGET_SPEEDUP_C32:.0f}x: {'met' if a['target']['met'] else 'NOT met'}")
        ip = a.get("in_process")
        if ip:
            for c in (1, 32):
                r = ip[f"c{c}"]
                print(f"{'in-process ' + str(c):<13}{1:>5}{r['wall_s']:>8.2f}{r['setup_s']:>9.2f}"
                      f"{r['engine_s']:>10.2f}{r['after_engine_s']:>9.2f}{r['floor_s']:>9.2f}"
                      f"{r['engine_turns_per_s']:>9.1f}{r['whole_turns_per_s']:>9.1f}"
                      f"{r['engine_cpu_ms_per_turn']:>13.2f}{'':>11}")
            print(f"  in-process model (the engine without an HTTP client): ratio c32/c1 "
                  f"{ip['ratio_engine']:.2f}x")
        rep = ", ".join(f"{w} words ({v['chars']} chars) {v['ms']:.2f} ms"
                        for w, v in a["repetition_check_ms_per_turn"].items())
        print(f"  repetition check per turn: {rep}")
    b = res.get("memory")
    if b:
        print(f"\n(b) engine memory, {b['conversations_at_once']} conversations at once, "
              f"{MEMORY_WORDS}-word replies, loopback {MEMORY_DELAY_S * 1000:.0f} ms")
        print(f"{'window':<8}{'turns':>7}{'peak KiB/conv':>15}{'largest request':>17}"
              f"{'KiB':>9}{'in flight':>11}")
        for window, entry in b["windows"].items():
            for r in entry["rows"]:
                print(f"{window:<8}{r['turns']:>7}{r['peak_bytes_per_conversation'] / 1024:>15.1f}"
                      f"{r['largest_request_messages']:>13} msgs"
                      f"{r['largest_request_bytes'] / 1024:>9.1f}{r['server_peak_in_flight']:>11}")
            last = entry.get("growth_bytes_per_turn_last_two")
            print(f"  window {window}: growth {last:.0f} bytes/turn per conversation between the "
                  f"last two lengths, least-squares slope {entry['slope_bytes_per_turn_fit']:.0f}"
                  " bytes/turn")


# Versions recorded with the results.
ENV_PACKAGES = ("openai", "personae")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer conversations")
    ap.add_argument("--limit", type=int, help="sample personas in (a) (x --conversations; "
                    "default 20, --quick 4)")
    ap.add_argument("--conversations", type=int, default=5,
                    help="conversations per persona in (a) (default 5)")
    ap.add_argument("--c32-runs", type=int, help="runs at concurrency 32 in (a), before and "
                    "after the one at concurrency 1 (default 2, --quick 1)")
    ap.add_argument("--memory-conversations", type=int,
                    help="conversations held at once in (b) (default 8, --quick 4)")
    ap.add_argument("--memory-turns", help="comma-separated conversation lengths in (b) "
                    "(default 10,40,160, --quick 10,40)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "simulate.json")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=DELAY_S, help=argparse.SUPPRESS)
    ap.add_argument("--reply-words", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:  # the loopback server's own process (see ServerProcess)
        serve(args.delay, args.reply_words)
        return 0
    if args.worker:  # one measurement in this fresh process (see _run_worker)
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return 0
    limit = args.limit or (4 if args.quick else 20)
    c32_runs = args.c32_runs or (1 if args.quick else 2)
    mem_conv = args.memory_conversations or (4 if args.quick else 8)
    mem_turns = [int(x) for x in (args.memory_turns or ("10,40" if args.quick
                                                        else "10,40,160")).split(",")]

    results: dict[str, Any] = {"quick": args.quick, "environment": environment(*ENV_PACKAGES),
                               "targets": {"speedup_c32_vs_c1_50ms": TARGET_SPEEDUP_C32}}
    started = time.perf_counter()
    if not args.skip_throughput:
        results["throughput"] = bench_throughput(limit, args.conversations, c32_runs,
                                                 LONG_WORDS)
    if not args.skip_memory:
        results["memory"] = bench_memory(mem_conv, mem_turns)
    return finish(args.out, results, started, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
