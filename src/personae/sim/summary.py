"""The summary of a simulation run: per-turn metric values, drift per agent, transcripts.

Built from the stored records only, so ``summary.json`` can always be rewritten from the run
store. The numbers come from the pure functions in :mod:`personae.sim.drift`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from personae import __version__
from personae.runtime.store import RunStore
from personae.sim.agents import Turn
from personae.sim.drift import METRICS, ai_identity_leak, drift_of, first_out_of_persona
from personae.sim.engine import ConversationPlan
from personae.sim.similarity import scored

if TYPE_CHECKING:
    from personae.sim.run import SimPlan

MAX_SHOWN = 50  # conversations in the report's transcript view (all are in the JSONL)
MAX_GROUPS = 40

Values = dict[tuple[str, int], dict[str, float | None]]


def transcript_rows(plans: Sequence[ConversationPlan], conversations: Mapping[str, list[Turn]],
                    ends: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One JSON row per conversation: ids, participants, stop reason, and every turn."""
    rows = []
    for plan in plans:
        turns = conversations.get(plan.id, [])
        rows.append({
            "conversation_id": plan.id,
            "persona_ids": [a.persona.id if a.persona else None for a in plan.agents],
            "agents": [{"id": a.id, "name": a.name, "role": a.role,
                        "persona_id": a.persona.id if a.persona else None}
                       for a in plan.agents],
            "seed": plan.seed,
            "stop_reason": (ends.get(plan.id) or {}).get("stop_reason"),
            "turns": [{"index": t.index, "turn": t.turn, "speaker": t.speaker, "name": t.name,
                       "role": t.role, "text": t.text, "end_signal": t.end_signal,
                       "started": t.started, "latency_s": t.latency_s,
                       "completion_tokens": t.completion_tokens, "scripted": t.scripted}
                      for t in turns],
        })
    return rows


def turn_values(run: SimPlan, store: RunStore,
                conversations: Mapping[str, list[Turn]]) -> tuple[Values, list[str]]:
    """Every scored turn's metric values, by (conversation, index); and notes on metrics
    that could not be computed."""
    metrics = run.config.active_metrics()
    judge = run.config.judge or ""
    notes: list[str] = []
    fidelity = {(r["conversation_id"], r["index"]): r.get("value")
                for _, r in store.items("fidelity") if r.get("judge") == judge}
    nli: dict[tuple[str, int], list[float]] = {}
    for _, r in store.items("nli"):
        if r.get("judge") == judge and r.get("value") is not None:
            nli.setdefault((r["conversation_id"], r["index"]), []).append(float(r["value"]))
    projection = {(r["conversation_id"], r["index"]): r.get("value")
                  for _, r in store.items("projection") if r.get("layer") == run.config.layer}
    similar = {(r["conversation_id"], r["index"]): r for _, r in store.items("similarity")}
    values: Values = {}
    for cid, turns in conversations.items():
        agents = run.agents.get(cid, {})
        for t in turns:
            agent = agents.get(t.speaker)
            if not scored(agent, t):
                continue
            v: dict[str, float | None] = {}
            key = (cid, t.index)
            if "fidelity" in metrics:
                v["fidelity"] = fidelity.get(key)
            if "consistency" in metrics:
                facts = nli.get(key)
                v["consistency"] = sum(facts) / len(facts) if facts else None
            if "leak" in metrics:
                v["leak"] = 1.0 if ai_identity_leak(t.text) else 0.0
            for m in ("similarity", "echo"):
                if m in metrics:
                    v[m] = (similar.get(key) or {}).get(m)
            if "projection" in metrics:
                v["projection"] = projection.get(key)
            values[key] = v
    missing = [k for k in values if k not in similar]
    if {"similarity", "echo"} & set(metrics) and missing:
        notes.append(f"similarity and echo are missing for {len(missing)} turns; re-run the "
                     "same simulate command to compute them (the embedding model needs "
                     "personae[local])")
    return values, notes


def build_summary(run: SimPlan, store: RunStore, conversations: Mapping[str, list[Turn]],
                  ends: Mapping[str, Mapping[str, Any]], *, failures: Sequence[str],
                  notes: Sequence[str] = ()) -> dict[str, Any]:
    """The whole summary of a simulation from its plan and stored records; ``notes`` lead
    its warnings (e.g. the bundled model's)."""
    cfg = run.config
    metrics = cfg.active_metrics()
    values, metric_notes = turn_values(run, store, conversations)
    # Per agent (across its conversations): metric -> [(conversation, turns, values)].
    series: dict[str, dict[str, list[tuple[str, list[int], list[float | None]]]]] = {}
    first_out: dict[str, dict[str, int | None]] = {}
    labels: dict[str, tuple[str, str]] = {}
    for plan in run.plans:
        turns = conversations.get(plan.id, [])
        for agent in plan.agents:
            own = [t for t in turns if t.speaker == agent.id and (plan.id, t.index) in values]
            if not own:
                continue
            labels[agent.id] = (agent.label, agent.role)
            per_metric = {m: ([t.turn for t in own], [values[(plan.id, t.index)].get(m)
                                                     for t in own]) for m in metrics}
            for m, (xs, ys) in per_metric.items():
                series.setdefault(agent.id, {}).setdefault(m, []).append((plan.id, xs, ys))
            first_out.setdefault(plan.id, {})[agent.id] = first_out_of_persona(
                {m: per_metric[m] for m in metrics}, METRICS)
    groups = []
    for agent_id, by_metric in list(series.items())[:MAX_GROUPS]:
        crossings = [first_out[cid].get(agent_id) for cid in first_out
                     if agent_id in first_out[cid]]
        groups.append({
            "id": agent_id, "label": labels[agent_id][0], "role": labels[agent_id][1],
            "n_conversations": len(crossings),
            "first_out_of_persona": _crossings(crossings),
            "metrics": {m: drift_of(s, METRICS[m]) for m, s in by_metric.items()},
        })
    stop_reasons = Counter((ends.get(p.id) or {}).get("stop_reason") or "unfinished"
                           for p in run.plans)
    n_turns = sum(len(t) for t in conversations.values())
    if len(series) > MAX_GROUPS:
        metric_notes.append(f"drift shown for the first {MAX_GROUPS} of {len(series)} agents")
    return {
        "run": {
            "model": cfg.model, "judge": cfg.judge, "personas": cfg.personas,
            "user_personas": cfg.user_personas or (cfg.user_script and f"script: "
                                                   f"{cfg.user_script}") or "built-in user",
            "mode": "group" if cfg.group else "pairs", "policy": cfg.policy,
            "max_turns": cfg.turns, "window": cfg.window, "n_conversations": len(run.plans),
            "seed": cfg.seed, "duration_s": float(store.get_meta("duration_s") or 0),
            "created": store.get_meta("created"),
            "personae_version": __version__, "run_dir": str(store.run_dir),
            "counts": {"conversations": len(run.plans),
                       "finished": sum(1 for p in run.plans if p.id in ends),
                       "turns": n_turns, "failed_calls": len(failures)},
            "stop_reasons": dict(stop_reasons),
        },
        "warnings": list(notes) + metric_notes + (
            [(f"{len(failures)} model calls failed (first: {failures[0]}); re-run the same "
              "command to retry them")] if failures else []),
        "metrics": [{"id": m, "label": METRICS[m].label,
                     "higher_is_better": METRICS[m].higher_is_better,
                     "threshold": METRICS[m].threshold,
                     "range": list(METRICS[m].value_range) if METRICS[m].value_range else None}
                    for m in metrics],
        "groups": groups,
        "conversations": [_conversation(p, conversations.get(p.id, []), ends, values,
                                        first_out.get(p.id, {}))
                          for p in run.plans[:MAX_SHOWN]],
        "conversations_shown": min(MAX_SHOWN, len(run.plans)),
        "conversations_total": len(run.plans),
    }


def _crossings(turns: Sequence[int | None]) -> dict[str, Any]:
    crossed = [t for t in turns if t is not None]
    return {"turns": list(turns), "median": statistics.median(crossed) if crossed else None,
            "n_crossed": len(crossed), "n": len(turns)}


def _conversation(plan: ConversationPlan, turns: Sequence[Turn],
                  ends: Mapping[str, Mapping[str, Any]], values: Values,
                  first_out: Mapping[str, int | None]) -> dict[str, Any]:
    return {
        "id": plan.id, "stop_reason": (ends.get(plan.id) or {}).get("stop_reason"),
        "n_turns": len(turns),
        "agents": [{"id": a.id, "name": a.name, "role": a.role} for a in plan.agents],
        "first_out_of_persona": dict(first_out),
        "turns": [{"index": t.index, "turn": t.turn, "speaker": t.speaker, "name": t.name,
                   "text": t.text, "latency_s": t.latency_s,
                   "metrics": {m: (None if v is None or not math.isfinite(v) else round(v, 4))
                               for m, v in values.get((plan.id, t.index), {}).items()}}
                  for t in turns],
    }

