"""Runtime benchmark: what personae's runtime costs on top of talking to a model directly.

(a) openai backend: requests/s and per-request client overhead of `Runner` over the openai
    backend at concurrency 1, 8 and 64, against a plain sequential loop of the openai SDK's
    ``chat.completions.create``, all against the loopback test server (50 ms per reply) run
    in a separate process. Target: at concurrency 64, at least 40x the sequential loop.
(b) local backends: tokens/s of ``bundled`` (llama.cpp) through `Runner` against
    llama-cpp-python called directly (target: at least 90%), and of ``hf:bundled`` one
    request at a time against 16 requests in one batch.

    PYTHONPATH=src python benchmarks/runtime.py            # full run, about 7 minutes
    PYTHONPATH=src python benchmarks/runtime.py --quick    # smoke run, about 1 minute

Results go to benchmarks/results/runtime.json (``--out``) and a table is printed. Every
runner is fresh and has no cache, so every request reaches the model. Per-request overhead is
latency minus the server's 50 ms. The machine is not isolated: the load average at the start
is recorded, and throughput at concurrency >= 8 is the median of ``--repeats`` rounds. With
--quick, concurrency 64 sees only a few waves of requests, so its start-up burst (64 requests
sent at once by one CPU-bound client) weighs heavily: check the target with a full run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
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
)

if (ROOT / "src" / "personae").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from personae.models import ChatParams, Message, load_model  # noqa: E402
from personae.runtime import ChatRequest, Runner  # noqa: E402

DELAY_S = 0.05  # the loopback server's reply delay: the floor of every request's latency
TARGET_SPEEDUP_C64 = 40.0
TARGET_LLAMA_RATIO = 0.90

SYSTEM = ("You are Rosa Quispe, a 58-year-old weaver from Cusco, Peru. You speak warmly and "
          "plainly, mention your family and your craft, and never claim to be an AI. Answer "
          "in English, in two or three sentences.")
QUESTIONS = [
    "Where do you live, and what is a normal day like for you?",
    "What do you think about tourists buying weavings in the market?",
    "How did you learn your craft, and who taught you?",
    "What worries you most about the future of your town?",
    "What do you cook for your family on a holiday?",
    "What would you tell a young person who wants to learn weaving?",
    "How has Cusco changed since you were a child?",
    "What is the hardest part of your work?",
]


# --------------------------------------------------------------------------------------------
# (a) openai backend against the loopback server


class LoopbackProcess(ChildServer):
    """``python -m personae.testing.loopback`` in a child process on a free loopback port."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(["-m", "personae.testing.loopback", "--port", "0",
                          "--delay", str(delay_s)])


def _overheads_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    ms = sorted((x - DELAY_S) * 1000 for x in latencies_s)
    return {"p50": round(_pct(ms, 50), 2), "p99": round(_pct(ms, 99), 2)}


def _pct(sorted_values: Sequence[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def bench_sequential_sdk(base_url: str, n: int) -> dict[str, Any]:
    """The baseline: one ``chat.completions.create`` after another, the SDK's plain API."""
    import openai

    client = openai.OpenAI(api_key="unused", base_url=base_url, max_retries=0)
    messages = [{"role": "user", "content": "warm-up"}]
    for _ in range(3):  # open the connection and import lazily loaded SDK modules
        client.chat.completions.create(model="loopback", messages=messages, max_tokens=16)
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        client.chat.completions.create(
            model="loopback", messages=[{"role": "user", "content": f"question {i}"}],
            max_tokens=16, temperature=0.7, seed=i)
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    client.close()
    return {"requests": n, "wall_s": round(wall, 3), "rps": round(n / wall, 1),
            "overhead_ms": _overheads_ms(latencies)}


async def _runner_round(base_url: str, concurrency: int, n: int) -> dict[str, Any]:
    model = load_model(f"openai:loopback@{base_url}", concurrency=concurrency)
    try:
        runner = Runner(model, cache=None, concurrency=concurrency, progress="off")
        warm = [ChatRequest((Message(role="user", content=f"warm-up {i}"),),
                            ChatParams(max_tokens=16)) for i in range(concurrency)]
        await runner.run_chats(warm)  # open the connections, import lazily loaded modules
        runner = Runner(model, cache=None, concurrency=concurrency, progress="off")
        requests = [ChatRequest((Message(role="user", content=f"question {i}"),),
                                ChatParams(max_tokens=16, seed=i)) for i in range(n)]
        cpu0 = time.process_time()
        start = time.perf_counter()
        results = await runner.run_chats(requests)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    finally:
        await model.aclose()
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} requests failed, e.g. {failed[0].error}")
    # latency_s is measured inside the backend's chat(): HTTP round trip plus time waiting
    # for the event loop, which is where a CPU-bound client queues.
    latencies = [r.completion.latency_s for r in results if r.completion is not None]
    return {"requests": n, "wall_s": round(wall, 3), "rps": round(n / wall, 1),
            "client_cpu_ms_per_request": round(1000 * cpu / n, 3),
            "overhead_ms": _overheads_ms(latencies), "model_calls": runner.stats.model_calls}


def bench_openai(n: int, n_serial: int, repeats: int,
                 concurrencies: Sequence[int] = (1, 8, 64)) -> dict[str, Any]:
    out: dict[str, Any] = {"server": {"delay_s": DELAY_S, "process": "separate"},
                           "runner": {}}
    with LoopbackProcess(DELAY_S) as server:
        print(f"(a) loopback server at {server.base_url}, {DELAY_S * 1000:.0f} ms per reply",
              flush=True)
        seq = bench_sequential_sdk(server.base_url, n_serial)
        out["sequential_sdk"] = seq
        print(f"    sequential SDK loop: {seq['rps']:.1f} req/s", flush=True)
        for c in concurrencies:
            count = n_serial if c == 1 else n
            rounds = []
            for _ in range(1 if c == 1 else repeats):
                srv_cpu0 = server.cpu_s()
                r = asyncio.run(_runner_round(server.base_url, c, count))
                r["server_cpu_ms_per_request"] = round(
                    1000 * (server.cpu_s() - srv_cpu0) / (count + c), 3)
                rounds.append(r)
            median = sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]
            entry = {**median, "speedup_vs_sequential": round(median["rps"] / seq["rps"], 2),
                     "rounds_rps": [r["rps"] for r in rounds]}
            out["runner"][str(c)] = entry
            print(f"    Runner concurrency {c:>3}: {entry['rps']:.1f} req/s "
                  f"({entry['speedup_vs_sequential']:.1f}x), rounds {entry['rounds_rps']}",
                  flush=True)
    c64 = out["runner"].get("64")
    if c64:
        out["target"] = {"speedup_c64": TARGET_SPEEDUP_C64,
                         "met": c64["speedup_vs_sequential"] >= TARGET_SPEEDUP_C64}
    return out


# --------------------------------------------------------------------------------------------
# (b) local backends


def _chat_requests(k: int, max_tokens: int) -> list[ChatRequest]:
    params = ChatParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    return [ChatRequest((Message(role="system", content=SYSTEM),
                         Message(role="user", content=QUESTIONS[i % len(QUESTIONS)])), params)
            for i in range(k)]


def _run_worker(name: str, **kwargs: Any) -> dict[str, Any]:
    """Run one measurement in a fresh Python process and return its JSON result.

    Why a process each: llama.cpp's wheels use OpenMP (libgomp), which keeps one team of
    worker threads per thread that calls into it. Once two calling threads have teams (say
    the main thread for the direct baseline and a worker thread for personae, which runs
    llama.cpp via asyncio.to_thread), the process has more OpenMP threads than cores and
    libgomp stops spin-waiting between tokens: decoding then runs at about half speed on
    2 cores, whichever path is measured. A fresh process per measurement keeps each path to
    one team, as in real use, and keeps torch's threads out of llama.cpp's way.
    """
    return run_worker(__file__, name, **kwargs)


def worker_llama_direct(k: int, max_tokens: int) -> dict[str, Any]:
    """llama-cpp-python called directly, from the main thread, as a user would."""
    import llama_cpp

    from personae.models.bundled import bundled_gguf_path
    from personae.models.llamacpp import model_params

    requests = _chat_requests(k, max_tokens)
    # Loaded as personae loads it (no extra CPU buffer types): wheels built with AMX die with
    # SIGILL on VMs that advertise AMX but fault on it, and the comparison stays like for like.
    with model_params(extra_buffers=False):
        llm = llama_cpp.Llama(model_path=str(bundled_gguf_path()), n_ctx=4096,
                              n_threads=os.cpu_count(), logits_all=False, verbose=False)

    def call(req: ChatRequest) -> int:
        p = req.params
        out = llm.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in req.messages],
            max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed)
        return int(out["usage"]["completion_tokens"])

    call(requests[0])  # warm-up: weights paged in, the system prompt in the prefix cache
    t = time.perf_counter()
    tokens = sum(call(r) for r in requests)
    return {"completion_tokens": tokens, "wall_s": time.perf_counter() - t}


async def _runner_pass(model: Any, requests: list[ChatRequest], label: str) -> dict[str, Any]:
    """One warm-up request (its time includes loading the model), then every request
    through a fresh Runner without cache, timed."""
    t = time.perf_counter()
    await Runner(model, cache=None, concurrency=1, progress="off").run_chats(requests[:1])
    warm_s = time.perf_counter() - t
    runner = Runner(model, cache=None, concurrency=1, progress="off")
    t = time.perf_counter()
    results = await runner.run_chats(requests)
    wall = time.perf_counter() - t
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{label} failed: {bad[0]}")
    return {"completion_tokens": sum(r.completion.completion_tokens
                                     for r in results if r.completion),
            "wall_s": wall, "model_calls": runner.stats.model_calls, "warm_s": warm_s}


def worker_llama_personae(k: int, max_tokens: int) -> dict[str, Any]:
    """The same requests through load_model("bundled") and a Runner without cache."""
    requests = _chat_requests(k, max_tokens)
    return asyncio.run(_runner_pass(load_model("bundled"), requests, "bundled"))


def bench_llamacpp(k: int, max_tokens: int, rounds: int) -> dict[str, Any]:
    """Same prompts and parameters (temperature 0) through personae and directly; the two
    alternate round by round so that drift in the machine's speed hits both alike."""
    names = ("direct", "personae")
    totals: dict[str, list[float]] = {name: [0, 0.0] for name in names}
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            r = _run_worker(f"llama-{name}", k=k, max_tokens=max_tokens)
            totals[name][0] += r["completion_tokens"]
            totals[name][1] += r["wall_s"]
            per_round[name].append(round(r["completion_tokens"] / r["wall_s"], 1))
    out: dict[str, Any] = {"requests_per_round": k, "rounds": rounds, "max_tokens": max_tokens,
                           "temperature": 0.0}
    for name, (tokens, wall) in totals.items():
        out[name] = {"completion_tokens": tokens, "wall_s": round(wall, 3),
                     "tokens_per_s": round(tokens / wall, 1),
                     "rounds_tokens_per_s": per_round[name]}
    out["ratio"] = round(out["personae"]["tokens_per_s"] / out["direct"]["tokens_per_s"], 3)
    out["target"] = {"ratio": TARGET_LLAMA_RATIO, "met": out["ratio"] >= TARGET_LLAMA_RATIO}
    return out


def worker_hf(k: int, max_tokens: int, batch_size: int) -> dict[str, Any]:
    requests = _chat_requests(k, max_tokens)
    model = load_model("hf:bundled", batch_size=batch_size)
    r = asyncio.run(_runner_pass(model, requests, "hf:bundled"))
    return {"batch_size": batch_size, "model_calls": r["model_calls"],
            "completion_tokens": r["completion_tokens"], "wall_s": round(r["wall_s"], 3),
            "tokens_per_s": round(r["completion_tokens"] / r["wall_s"], 1),
            # the warm-up includes loading (the first time ever: the GGUF conversion)
            "first_call_with_load_s": round(r["warm_s"], 2)}


def bench_hf(k: int, max_tokens: int) -> dict[str, Any]:
    """``hf:bundled``: k requests one at a time (batch_size 1) against one batch of k."""
    out: dict[str, Any] = {"requests": k, "max_tokens": max_tokens, "temperature": 0.0}
    for label, batch_size in (("single", 1), ("batched", k)):
        out[label] = _run_worker("hf", k=k, max_tokens=max_tokens, batch_size=batch_size)
    out["batched_vs_single"] = round(out["batched"]["tokens_per_s"]
                                     / out["single"]["tokens_per_s"], 2)
    return out


WORKERS = {"llama-direct": worker_llama_direct, "llama-personae": worker_llama_personae,
           "hf": worker_hf}


# --------------------------------------------------------------------------------------------


def print_table(res: dict[str, Any]) -> None:
    print()
    a = res.get("openai")
    if a:
        seq = a["sequential_sdk"]
        print(f"{'openai backend, 50 ms server':<34}{'req/s':>9}{'vs seq':>9}"
              f"{'p50 ovh ms':>12}{'p99 ovh ms':>12}{'CPU ms/req':>12}")
        print(f"{'sequential SDK loop':<34}{seq['rps']:>9.1f}{1.0:>8.1f}x"
              f"{seq['overhead_ms']['p50']:>12.2f}{seq['overhead_ms']['p99']:>12.2f}"
              f"{'':>12}")
        for c, r in a["runner"].items():
            print(f"{'Runner, concurrency ' + c:<34}{r['rps']:>9.1f}"
                  f"{r['speedup_vs_sequential']:>8.1f}x"
                  f"{r['overhead_ms']['p50']:>12.2f}{r['overhead_ms']['p99']:>12.2f}"
                  f"{r['client_cpu_ms_per_request']:>12.2f}")
        print("  ovh: latency minus the server's 50 ms; CPU: the client process's CPU time "
              "per request")
        if "target" in a:
            print(f"  target >= {TARGET_SPEEDUP_C64:.0f}x at concurrency 64: "
                  f"{'met' if a['target']['met'] else 'NOT met'}")
    b = res.get("llamacpp")
    if b:
        print(f"\n{'bundled (llama.cpp), temp 0':<34}{'tok/s':>9}{'ratio':>9}")
        print(f"{'llama-cpp-python direct':<34}{b['direct']['tokens_per_s']:>9.1f}{1.0:>9.2f}")
        print(f"{'through personae Runner':<34}{b['personae']['tokens_per_s']:>9.1f}"
              f"{b['ratio']:>9.2f}")
        print(f"  target >= {TARGET_LLAMA_RATIO:.0%} of direct: "
              f"{'met' if b['target']['met'] else 'NOT met'}")
    h = res.get("hf")
    if h:
        print(f"\n{'hf:bundled, temp 0':<34}{'tok/s':>9}{'ratio':>9}")
        print(f"{'one at a time (batch_size 1)':<34}{h['single']['tokens_per_s']:>9.1f}"
              f"{1.0:>9.2f}")
        print(f"{'batched (batch_size ' + str(h['requests']) + ')':<34}"
              f"{h['batched']['tokens_per_s']:>9.1f}{h['batched_vs_single']:>9.2f}")


# Versions recorded with the results.
ENV_PACKAGES = ("openai", "llama_cpp", "torch", "transformers")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer requests")
    ap.add_argument("--requests", type=int, help="requests per openai round (default 2000, "
                    "--quick 300)")
    ap.add_argument("--serial-requests", type=int, help="requests for the sequential loop "
                    "and concurrency 1 (default: --requests)")
    ap.add_argument("--repeats", type=int, help="rounds at concurrency >= 8 (median kept; "
                    "default 5, --quick 1)")
    ap.add_argument("--skip-openai", action="store_true")
    ap.add_argument("--skip-local", action="store_true", help="skip (b): llama.cpp and hf")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtime.json")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:  # one measurement in this fresh process (see _run_worker)
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return 0
    n = args.requests or (300 if args.quick else 2000)
    n_serial = args.serial_requests or (100 if args.quick else n)
    repeats = args.repeats or (1 if args.quick else 5)

    results: dict[str, Any] = {"quick": args.quick, "environment": environment(*ENV_PACKAGES)}
    started = time.perf_counter()
    if not args.skip_openai:
        results["openai"] = bench_openai(n, n_serial, repeats)
    if not args.skip_local:
        t = time.perf_counter()
        print("(b) bundled through personae vs llama-cpp-python direct ...", flush=True)
        results["llamacpp"] = bench_llamacpp(k=2 if args.quick else 4,
                                             max_tokens=64 if args.quick else 128,
                                             rounds=1 if args.quick else 3)
        print("(b) hf:bundled single vs batched ...", flush=True)
        results["hf"] = bench_hf(k=4 if args.quick else 16, max_tokens=16 if args.quick else 32)
        results["local_wall_s"] = round(time.perf_counter() - t, 1)
    return finish(args.out, results, started, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
