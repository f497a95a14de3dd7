"""Survey benchmark: questionnaire items/s by answer mode, and the cost of steering hooks.

(a) IPIP-NEO-120 on ``bundled`` (llama.cpp): items/s of
    ``personae.instruments.administer.administer(..., variant="base")`` in ``logprob`` mode
    (one `score_choices` per item over "1".."5", assistant turn prefilled) against
    ``generate`` mode (a greedy reply of at most 8 tokens, parsed), same model instance,
    same items, in the same run. Target: ``logprob`` at least 10x the items/s of
    ``generate``. The modes take turns ``--chunk`` items at a time (which goes first
    alternating), over ``--rounds`` passes through the items; each chunk runs through a fresh
    `Runner` without a response cache, so every item reaches the model. The ratio is total
    items/s over total items/s; the median of the per-chunk-pair ratios is kept beside it,
    as it shrugs off a slow spell of the shared machine. llama.cpp's own counters
    (``llama_perf_context``) split each mode's time into prompt processing, token-by-token
    decoding and the rest (Python: chat templates, tokenising, sampling, parsing), which
    says where the time goes and
    bounds the ratio: both modes must process the item's prompt; ``generate`` adds its
    decoded tokens, so the ratio cannot exceed (prompt + decode + rest of ``generate``) /
    (prompt of ``logprob``) whatever ``logprob`` does beyond that.
(b) ``hf:bundled`` (transformers): greedy generation tokens/s of one `chat_batch` of
    ``--prompts`` prompts x ``--max-tokens`` tokens, unsteered against steered
    (``HFModel.with_steering``: a random `PersonaVector`, one forward hook adding
    4 x unit vector to the output of block 15) on the same loaded weights, over ``--repeats``
    repeats, the conditions taking turns (which goes first rotates); tokens/s is completion
    tokens / wall time of the call, with stop strings off and prompts that ask for long
    replies so that rows run to ``--max-tokens`` (the JSON says whether they all did).
    Target: overhead = 1 - median steered tokens/s / median unsteered tokens/s at most 5 %.
    For information: the same with a hook on every one of the 30 blocks, the median of the
    per-repeat paired overheads, and one hook's own cost measured directly (a module call
    with and without personae's hook, in microseconds) scaled to the run.

    PYTHONPATH=src python benchmarks/survey.py            # full run, about 6 minutes
    PYTHONPATH=src python benchmarks/survey.py --quick    # smoke run, about 1 minute

Results go to benchmarks/results/survey.json (``--out``) and a table is printed. Each part
runs in its own Python process (as in benchmarks/runtime.py: llama.cpp's OpenMP threads and
torch's threads then do not compete for the cores, and each measurement starts clean), and
is warmed up (weights loaded, first call made) before anything is timed. The machine is not
isolated: the load average at the start is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
# benchmarks are scripts, not a package: _worker is found on the path above
from _worker import (  # noqa: E402
    environment,
    finish,
    run_worker,
)

if (ROOT / "src" / "personae").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

TARGET_LOGPROB_RATIO = 10.0  # logprob items/s >= 10x generate items/s
TARGET_HOOK_OVERHEAD = 0.05  # steered tokens/s at most 5 % below unsteered

INSTRUMENT = "ipip-120"
VARIANT = "base"
STEER_LAYER = 15  # a middle block of the 30
STEER_COEF = 4.0
PROMPTS = [  # open-ended asks, so greedy replies run on to the token limit
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how bread is made, from growing wheat to baking the loaf.",
    "Describe a busy market in a large city, with its sounds, smells and people, at length.",
    "Write a long letter to a friend describing your last holiday by the sea.",
    "Explain step by step how a bicycle works, part by part, in as much detail as you can.",
    "Tell the full history of a small mountain village over three hundred years.",
    "Write a detailed guide to keeping a vegetable garden through all four seasons.",
    "Describe, in a long essay, what a day on a sailing ship in the 1800s was like.",
]


# --------------------------------------------------------------------------------------------
# (a) logprob vs generate on llama.cpp


def _perf(llm: Any) -> dict[str, float]:
    import llama_cpp

    p = llama_cpp.llama_perf_context(llm._ctx.ctx)
    return {"prompt_ms": p.t_p_eval_ms, "prompt_tokens": p.n_p_eval,
            "decode_ms": p.t_eval_ms, "decode_tokens": p.n_eval}


def _perf_reset(llm: Any) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)


async def _administer_once(model: Any, q: Any, mode: str, items: list[str]) -> dict[str, Any]:
    """One pass over ``items`` in ``mode`` through a fresh Runner without cache, timed, with
    llama.cpp's prompt/decode counters for exactly this pass."""
    from personae.instruments.administer import administer
    from personae.runtime import Runner

    llm = model.llama()
    runner = Runner(model, cache=None, progress="off")
    _perf_reset(llm)
    t = time.perf_counter()
    answers = await administer(model, q, mode=mode, items=items, variant=VARIANT, runner=runner)
    wall = time.perf_counter() - t
    perf = _perf(llm)
    if len(answers) != len(items):
        raise RuntimeError(f"{mode}: {len(answers)} answers for {len(items)} items")
    return {"wall_s": wall, "answers": answers, "model_calls": runner.stats.model_calls,
            "cache_hits": runner.stats.cache_hits, **perf}


def worker_survey(n_items: int, rounds: int, chunk: int) -> dict[str, Any]:
    from personae.instruments import load_questionnaire
    from personae.instruments.administer import (
        GENERATE_PARAMS,
        PREFILL,
        item_messages,
        resolve_variant,
    )
    from personae.models import load_model

    q = load_questionnaire(INSTRUMENT)
    items = [i.id for i in q.items][:n_items]
    model = load_model("bundled")
    # Warm-up, not timed: weights loaded and paged in, one call in each mode (on the last
    # questionnaire item, so the timed passes' prompts are not all already cached).
    warm = [q.items[-1].id]
    t = time.perf_counter()
    for mode in ("logprob", "generate"):
        asyncio.run(_administer_once(model, q, mode, warm))
    warm_s = time.perf_counter() - t

    # Each round puts every item in both modes, ``chunk`` items at a time, the modes taking
    # turns chunk by chunk (and which goes first alternating), so that a slow spell of the
    # shared machine hits both modes alike and spoils only a few chunk pairs.
    passes: dict[str, list[dict[str, Any]]] = {"logprob": [], "generate": []}
    chunks = [items[j:j + chunk] for j in range(0, len(items), chunk)]
    pair = 0
    for k in range(rounds):
        for part in chunks:
            for mode in (("logprob", "generate") if pair % 2 == 0 else ("generate", "logprob")):
                r = asyncio.run(_administer_once(model, q, mode, part))
                passes[mode].append({**r, "round": k, "items": len(part)})
            pair += 1

    # Prompt lengths (whole prompt as llama.cpp sees it; the KV prefix shared with the
    # previous item is not processed again, which the perf counters reflect).
    llm = model.llama()
    v = resolve_variant(q, VARIANT)
    lengths: dict[str, list[int]] = {"logprob": [], "generate": []}
    for item in items:
        msgs = item_messages(q, item, v)
        for mode, prefill in (("logprob", PREFILL), ("generate", "")):
            text = model.render_prompt(msgs, prefill)
            lengths[mode].append(len(llm.tokenize(text.encode(), add_bos=False, special=True)))

    out: dict[str, Any] = {"warm_up_s": round(warm_s, 2)}
    for mode, runs in passes.items():
        n = sum(r["items"] for r in runs)
        by_round = [[r for r in runs if r["round"] == k] for k in range(rounds)]
        wall = sum(r["wall_s"] for r in runs)
        answers = [a for r in runs for a in r["answers"]]
        prompt_ms = sum(r["prompt_ms"] for r in runs)
        decode_ms = sum(r["decode_ms"] for r in runs)
        entry: dict[str, Any] = {
            "items": n, "wall_s": round(wall, 3), "items_per_s": round(n / wall, 2),
            "rounds_items_per_s": [round(sum(r["items"] for r in rr)
                                         / sum(r["wall_s"] for r in rr), 2) for rr in by_round],
            "chunks_items_per_s": [round(r["items"] / r["wall_s"], 2) for r in runs],
            # llama.cpp's prompt speed per chunk: differences mean the machine's speed varied
            "chunks_prompt_tokens_per_s": [
                round(1000 * r["prompt_tokens"] / r["prompt_ms"], 1) if r["prompt_ms"] else None
                for r in runs],
            "model_calls": sum(r["model_calls"] for r in runs),
            "cache_hits": sum(r["cache_hits"] for r in runs),
            "prompt_tokens_per_item_full": round(statistics.mean(lengths[mode]), 1),
            "per_item_ms": {
                "total": round(1000 * wall / n, 2),
                "llama_prompt_processing": round(prompt_ms / n, 2),
                "llama_decode": round(decode_ms / n, 2),
                "rest": round((1000 * wall - prompt_ms - decode_ms) / n, 2),
            },
            "per_item_tokens": {
                "prompt_processed": round(sum(r["prompt_tokens"] for r in runs) / n, 1),
                "decoded": round(sum(r["decode_tokens"] for r in runs) / n, 2),
            },
        }
        pt = sum(r["prompt_tokens"] for r in runs)
        dt = sum(r["decode_tokens"] for r in runs)
        entry["llama_prompt_tokens_per_s"] = round(1000 * pt / prompt_ms, 1) if prompt_ms else None
        entry["llama_decode_tokens_per_s"] = round(1000 * dt / decode_ms, 1) if decode_ms else None
        unparsable = sum(a.value is None for a in answers)
        entry["unparsable"] = unparsable
        entry["unparsable_rate"] = round(unparsable / n, 4)
        if mode == "logprob":
            cov = [a.coverage for a in answers if a.coverage is not None]
            entry["coverage"] = {"mean": round(statistics.mean(cov), 4),
                                 "median": round(statistics.median(cov), 4),
                                 "min": round(min(cov), 4)} if cov else None
            entry["prefill"] = PREFILL
        else:
            entry["max_tokens"] = GENERATE_PARAMS.max_tokens
            entry["temperature"] = GENERATE_PARAMS.temperature
            first = [a for r in by_round[0] for a in r["answers"]]
            entry["example_replies"] = [a.raw for a in first[:5]]
            entry["value_counts_first_round"] = {
                str(k): sum(1 for a in first if a.value == k) for k in (1.0, 2.0, 3.0, 4.0, 5.0)}
        out[mode] = entry
    return out


def bench_survey(n_items: int, rounds: int, chunk: int) -> dict[str, Any]:
    r = _run_worker("survey", n_items=n_items, rounds=rounds, chunk=chunk)
    lp, gen = r["logprob"], r["generate"]
    ratio = lp["items_per_s"] / gen["items_per_s"]
    lp_ms, gen_ms = lp["per_item_ms"], gen["per_item_ms"]
    # The most the ratio could be with logprob reduced to the bare prompt processing it
    # cannot avoid (its Python rest and the prefill's few tokens at zero cost).
    bound = gen_ms["total"] / lp_ms["llama_prompt_processing"] \
        if lp_ms["llama_prompt_processing"] else None
    # decoded tokens generate would need for the target: 9 x logprob's time per item
    needed = (TARGET_LOGPROB_RATIO - 1) * lp_ms["total"] * gen["llama_decode_tokens_per_s"] \
        / 1000 if gen["llama_decode_tokens_per_s"] else None
    out: dict[str, Any] = {
        "model": "bundled (llama.cpp, SmolLM2-135M-Instruct Q4_1)",
        "instrument": INSTRUMENT, "variant": VARIANT, "items_per_round": n_items,
        "rounds": rounds, "chunk_items": chunk,
        "order": "chunk by chunk, the modes taking turns; logprob first in even chunk pairs",
        "response_cache": None, **r,
        "ratio_logprob_vs_generate": round(ratio, 2),
        # each chunk pair ran back to back: a slow spell spoils a few pairs, not the median
        "ratio_median_of_chunk_pairs": round(statistics.median(
            a / b for a, b in zip(lp["chunks_items_per_s"], gen["chunks_items_per_s"],
                                  strict=True)), 2),
        "ratio_bound_if_logprob_were_prompt_processing_only": round(bound, 2) if bound else None,
        "generate_tokens_needed_for_target_ratio": round(needed) if needed else None,
        "target": {"ratio": TARGET_LOGPROB_RATIO, "met": ratio >= TARGET_LOGPROB_RATIO},
    }
    out["where_the_time_goes"] = (
        f"per item, generate: {gen_ms['total']:.1f} ms = {gen_ms['llama_prompt_processing']:.1f} "
        f"prompt processing ({gen['per_item_tokens']['prompt_processed']:.0f} tokens) + "
        f"{gen_ms['llama_decode']:.1f} decoding ({gen['per_item_tokens']['decoded']:.1f} "
        f"tokens) + {gen_ms['rest']:.1f} rest; logprob: {lp_ms['total']:.1f} ms = "
        f"{lp_ms['llama_prompt_processing']:.1f} prompt processing "
        f"({lp['per_item_tokens']['prompt_processed']:.0f} tokens) + "
        f"{lp_ms['llama_decode']:.1f} decoding + {lp_ms['rest']:.1f} rest. Both modes must "
        f"process each item's prompt (about {lp['prompt_tokens_per_item_full']:.0f} tokens, "
        f"of which the KV prefix shared with the previous item saves "
        f"{lp['prompt_tokens_per_item_full'] - lp['per_item_tokens']['prompt_processed']:.0f}:"
        f" the item's statement comes early in the template) at "
        f"{lp['llama_prompt_tokens_per_s']:.0f} tokens/s; generate's extra work is only its "
        f"{gen['per_item_tokens']['decoded']:.1f} decoded tokens (at most "
        f"{gen.get('max_tokens')}) at {gen['llama_decode_tokens_per_s']:.0f} tokens/s, so "
        f"even a logprob mode costing nothing but its prompt processing would be at most "
        f"{bound:.2f}x faster. At these speeds a 10x ratio would need generate replies of "
        f"about {needed:.0f} tokens (9 x logprob's {lp_ms['total']:.0f} ms per item in "
        f"decoding), not an answer of a few tokens."
        if bound and needed else "no prompt processing or decoding recorded")
    return out


# --------------------------------------------------------------------------------------------
# (b) hook overhead on transformers


def worker_steer(n_prompts: int, max_tokens: int, repeats: int, layer: int,
                 coefficient: float) -> dict[str, Any]:
    import numpy as np
    import torch

    from personae.models import ChatParams, Message, load_model
    from personae.vectors.file import PersonaVector
    from personae.vectors.steering import Steering

    base = load_model("hf:bundled", batch_size=n_prompts)
    hf = base.model  # load now
    n_layers, hidden = hf.config.num_hidden_layers, hf.config.hidden_size
    rng = np.random.default_rng(0)
    vector = PersonaVector.from_array(rng.standard_normal((n_layers, hidden)).astype(np.float32),
                                      trait="random", model=base.identity,
                                      position="response_avg", method="mean_diff")
    conditions = {
        "unsteered": base.with_steering([]),
        "steered": base.with_steering([Steering(vector, layer, coefficient)]),
        "steered_all_layers": base.with_steering(
            [Steering(vector, k, coefficient) for k in range(n_layers)]),
    }
    params = ChatParams(max_tokens=max_tokens, temperature=0.0, seed=0, stop=())
    requests = [([Message(role="user", content=PROMPTS[i % len(PROMPTS)])], params)
                for i in range(n_prompts)]

    def once(model: Any) -> dict[str, Any]:
        t = time.perf_counter()
        completions = asyncio.run(model.chat_batch(requests))
        wall = time.perf_counter() - t
        tokens = sum(c.completion_tokens for c in completions)
        return {"wall_s": wall, "completion_tokens": tokens, "tokens_per_s": tokens / wall,
                "all_rows_full_length": all(c.completion_tokens == max_tokens
                                            for c in completions),
                "texts": [c.text for c in completions]}

    for model in conditions.values():  # warm-up, not timed: the same batch once each
        asyncio.run(model.chat_batch(requests))
    names = list(conditions)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for k in range(repeats):
        order = names[k % len(names):] + names[:k % len(names)]  # rotate who goes first
        for name in order:
            runs[name].append(once(conditions[name]))

    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                           "vector": f"standard normal, seed 0, shape ({n_layers}, {hidden})",
                           "hook_cost": hook_cost(n_prompts, hidden)}
    for name, rs in runs.items():
        tps = [r["tokens_per_s"] for r in rs]
        out[name] = {
            "median_tokens_per_s": round(statistics.median(tps), 2),
            "rounds_tokens_per_s": [round(x, 2) for x in tps],
            "rounds_wall_s": [round(r["wall_s"], 3) for r in rs],
            "completion_tokens_per_round": [r["completion_tokens"] for r in rs],
            "all_rows_full_length": all(r["all_rows_full_length"] for r in rs),
            "example_reply_start": rs[0]["texts"][0][:160],
        }
        if name != "unsteered":  # did the steering change the greedy replies at all?
            out[name]["replies_differing_from_unsteered"] = sum(
                a != b for a, b in zip(rs[0]["texts"], runs["unsteered"][0]["texts"],
                                       strict=True))
        if name != "unsteered":
            out[name]["hooks"] = len({s.layer for s in conditions[name].steerings})
    return out


def hook_cost(batch: int, hidden: int, calls: int = 20000) -> dict[str, float]:
    """What one steering hook costs per forward call, measured directly: a module called on
    a decode step's activations (batch x 1 x hidden) with and without personae's hook
    (PyTorch's hook dispatch plus the broadcast add), interleaved in chunks, best of 5."""
    import torch

    from personae.models.hooks import _make_hook

    module = torch.nn.Identity()
    x = torch.zeros(batch, 1, hidden)
    delta = torch.ones(hidden)

    def timed(hooked: bool) -> float:
        handle = module.register_forward_hook(_make_hook(delta), prepend=True) if hooked else None
        with torch.inference_mode():
            t = time.perf_counter()
            for _ in range(calls):
                module(x)
            elapsed = time.perf_counter() - t
        if handle is not None:
            handle.remove()
        return elapsed / calls

    plain, hooked = [], []
    for _ in range(5):
        plain.append(timed(False))
        hooked.append(timed(True))
    return {"module_call_us": round(1e6 * min(plain), 2),
            "with_hook_us": round(1e6 * min(hooked), 2),
            "hook_us": round(1e6 * (min(hooked) - min(plain)), 2)}


def bench_steer(n_prompts: int, max_tokens: int, repeats: int) -> dict[str, Any]:
    r = _run_worker("steer", n_prompts=n_prompts, max_tokens=max_tokens, repeats=repeats,
                    layer=STEER_LAYER, coefficient=STEER_COEF)
    un = r["unsteered"]["median_tokens_per_s"]
    out: dict[str, Any] = {
        "model": "hf:bundled (transformers, float32)", "prompts": n_prompts,
        "max_tokens": max_tokens, "temperature": 0.0, "stop": [], "repeats": repeats,
        "batched": "one chat_batch call of all prompts per measurement",
        "order": "rotating: each condition goes first in turn",
        "steering": {"layer": STEER_LAYER, "coefficient": STEER_COEF, "relative": False},
        **r,
    }
    for name in ("steered", "steered_all_layers"):
        paired = [1 - s / u for s, u in zip(r[name]["rounds_tokens_per_s"],
                                             r["unsteered"]["rounds_tokens_per_s"], strict=True)]
        out[name]["overhead"] = round(1 - r[name]["median_tokens_per_s"] / un, 4)
        out[name]["overhead_paired_median"] = round(statistics.median(paired), 4)
    out["overhead"] = out["steered"]["overhead"]
    # The hooks' own cost, from the direct measurement: hooks x forward calls (one per
    # generated token) x cost per call, against the unsteered wall time of one batch.
    un_wall = statistics.median(r["unsteered"]["rounds_wall_s"])
    for name in ("steered", "steered_all_layers"):
        cost_s = out[name]["hooks"] * max_tokens * r["hook_cost"]["hook_us"] / 1e6
        out[name]["overhead_from_hook_cost"] = round(cost_s / un_wall, 6)
    out["target"] = {"max_overhead": TARGET_HOOK_OVERHEAD,
                     "met": out["overhead"] <= TARGET_HOOK_OVERHEAD,
                     "measured_on": "steered (one hook, the usual case)"}
    return out


# --------------------------------------------------------------------------------------------


def _run_worker(name: str, **kwargs: Any) -> dict[str, Any]:
    """One measurement in a fresh Python process; its JSON result (the last stdout line)."""
    return run_worker(__file__, name, **kwargs)


WORKERS = {"survey": worker_survey, "steer": worker_steer}


def print_table(res: dict[str, Any]) -> None:
    s = res.get("survey")
    if s:
        print(f"\n{INSTRUMENT} on bundled (llama.cpp), {s['items_per_round']} items x "
              f"{s['rounds']} rounds")
        print(f"{'mode':<10}{'items/s':>9}{'ms/item':>9}{'prompt ms':>11}{'decode ms':>11}"
              f"{'rest ms':>9}{'decoded':>9}  quality")
        for mode in ("logprob", "generate"):
            m = s[mode]
            ms = m["per_item_ms"]
            quality = (f"coverage mean {m['coverage']['mean']:.3f}" if mode == "logprob"
                       and m.get("coverage") else f"unparsable {m['unparsable_rate']:.1%}")
            print(f"{mode:<10}{m['items_per_s']:>9.2f}{ms['total']:>9.1f}"
                  f"{ms['llama_prompt_processing']:>11.1f}{ms['llama_decode']:>11.1f}"
                  f"{ms['rest']:>9.1f}{m['per_item_tokens']['decoded']:>9.2f}  {quality}")
        print(f"  ratio logprob/generate {s['ratio_logprob_vs_generate']:.2f}x (median of "
              f"chunk pairs {s['ratio_median_of_chunk_pairs']:.2f}x; target >= "
              f"{TARGET_LOGPROB_RATIO:.0f}x: {'met' if s['target']['met'] else 'NOT met'}; "
              f"bound if logprob were prompt processing only: "
              f"{s['ratio_bound_if_logprob_were_prompt_processing_only']}x)")
    h = res.get("steer")
    if h:
        print(f"\nhf:bundled generation, {h['prompts']} prompts x {h['max_tokens']} tokens, "
              f"greedy, {h['repeats']} repeats")
        print(f"{'condition':<22}{'median tok/s':>14}{'overhead':>10}{'paired':>9}  rounds")
        for name in ("unsteered", "steered", "steered_all_layers"):
            m = h[name]
            ovh = f"{m['overhead']:>10.1%}{m['overhead_paired_median']:>9.1%}" \
                if "overhead" in m else f"{'':>10}{'':>9}"
            print(f"{name:<22}{m['median_tokens_per_s']:>14.2f}{ovh}  "
                  f"{m['rounds_tokens_per_s']}")
        print(f"  hook overhead (one hook at layer {STEER_LAYER}) {h['overhead']:.1%} (target <= "
              f"{TARGET_HOOK_OVERHEAD:.0%}: {'met' if h['target']['met'] else 'NOT met'}); "
              f"a hook costs {h['hook_cost']['hook_us']:.1f} us per call, i.e. "
              f"{h['steered']['overhead_from_hook_cost']:.4%} (one hook) and "
              f"{h['steered_all_layers']['overhead_from_hook_cost']:.3%} (30 hooks) of the "
              f"unsteered time")


# Versions recorded with the results.
ENV_PACKAGES = ("personae", "llama_cpp", "torch", "transformers", "numpy")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer items and repeats")
    ap.add_argument("--items", type=int, help="IPIP-120 items per pass (default 120, --quick 20)")
    ap.add_argument("--rounds", type=int, help="passes over the items in each mode (default 2, "
                    "--quick 1)")
    ap.add_argument("--chunk", type=int, default=20, help="items per turn: the modes take "
                    "turns chunk by chunk (default 20)")
    ap.add_argument("--prompts", type=int, default=8, help="prompts in the generation batch")
    ap.add_argument("--max-tokens", type=int, help="tokens per prompt (default 64, --quick 16)")
    ap.add_argument("--repeats", type=int, help="measurements per steering condition "
                    "(default 5, --quick 2)")
    ap.add_argument("--skip-survey", action="store_true")
    ap.add_argument("--skip-steer", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "survey.json")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:  # one measurement in this fresh process (see _run_worker)
        print(json.dumps(WORKERS[args.worker](**json.loads(args.worker_args))))
        return 0
    n_items = args.items or (20 if args.quick else 120)
    rounds = args.rounds or (1 if args.quick else 2)
    max_tokens = args.max_tokens or (16 if args.quick else 64)
    repeats = args.repeats or (2 if args.quick else 5)

    results: dict[str, Any] = {
        "quick": args.quick, "environment": environment(*ENV_PACKAGES),
        "targets": {"logprob_vs_generate_items_per_s": TARGET_LOGPROB_RATIO,
                    "hook_overhead_max": TARGET_HOOK_OVERHEAD}}
    started = time.perf_counter()
    if not args.skip_survey:
        print(f"(a) {INSTRUMENT}: {n_items} items x {rounds} rounds per mode on bundled",
              flush=True)
        results["survey"] = bench_survey(n_items, rounds, args.chunk)
    if not args.skip_steer:
        print(f"(b) hf:bundled: {args.prompts} prompts x {max_tokens} tokens, {repeats} repeats "
              "per condition", flush=True)
        results["steer"] = bench_steer(args.prompts, max_tokens, repeats)
    return finish(args.out, results, started, print_table)


if __name__ == "__main__":
    raise SystemExit(main())
