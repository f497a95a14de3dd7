"""Render the summary of a ``personae simulate`` run as one self-contained HTML file.

Same conventions as the eval and survey reports (:mod:`personae.report.html`): inline CSS and
SVG, no network, every run string (persona names, utterances) escaped by jinja2's
autoescaping, missing numbers shown as "—". Any field of the summary may be missing or null.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personae._files import atomic_write
from personae.report.html import (
    DASH,
    REPORT_NAME,
    as_list,
    as_map,
    finite,
    fmt_duration,
    fmt_int,
    fmt_num,
    fmt_text,
    template_env,
)

__all__ = ["render_simulate_html", "write_simulate_report"]

MAX_GROUPS = 12
_SIGNS = ("negative", "positive", "flat", "unknown")



def _minus(text: str) -> str:
    # A typographic minus reads better in tables; numbers are the only thing with hyphens here.
    return text.replace("-", "−")


def metric_range(metric: Mapping[str, Any]) -> tuple[float, float] | None:
    """A metric's ``(low, high)`` range, or ``None`` when it has no usable one.

    >>> metric_range({"range": [1, 5]}), metric_range({"range": [1, 1]}), metric_range({})
    ((1.0, 5.0), None, None)
    """
    bounds = as_list(metric.get("range"))
    if len(bounds) != 2:
        return None
    lo, hi = finite(bounds[0]), finite(bounds[1])
    return (lo, hi) if lo is not None and hi is not None and hi > lo else None


def fmt_slope(slope: Any) -> str:
    """``"−0.12 [−0.20, −0.05] n=16, 2 conversations"``; ``"—"`` without a value.

    Small slopes get a third decimal, so a real drift of 0.004 per turn does not print as 0.00.

    >>> fmt_slope({"value": -0.12, "ci_low": -0.2, "ci_high": -0.05, "n": 16, "clusters": 2})
    '−0.12 [−0.20, −0.05] n=16, 2 conversations'
    """
    slope = as_map(slope)
    v = finite(slope.get("value"))
    if v is None:
        return DASH
    digits = 2 if abs(v) >= 0.095 else 3
    text = fmt_num(v, digits)
    lo, hi = finite(slope.get("ci_low")), finite(slope.get("ci_high"))
    if lo is not None or hi is not None:
        text += f" [{fmt_num(lo, digits)}, {fmt_num(hi, digits)}]"
    parts = []
    if slope.get("n") is not None:
        parts.append(f"n={fmt_int(slope.get('n'))}")
    clusters = finite(slope.get("clusters"))
    if clusters is not None:
        parts.append(f"{fmt_int(slope.get('clusters'))} "
                     f"conversation{'' if clusters == 1 else 's'}")
    return _minus(" ".join([text, ", ".join(parts)]).strip())


def fmt_first(first: Any, unit: str = "conversations") -> str:
    """``"turn 3 (median; 1 of 2 conversations)"``, ``"never (0 of 2 conversations)"`` or "—"."""
    if not isinstance(first, Mapping):
        return DASH
    n = fmt_int(first.get("n"))
    crossed = finite(first.get("n_crossed"))
    median = finite(first.get("median"))
    of = f"{fmt_int(first.get('n_crossed'))} of {n} {unit}"
    if median is not None:
        return f"turn {fmt_int(median)} (median; {of})"
    if crossed == 0:
        return f"never ({of})"
    return DASH


def _slope_sign(slope: Mapping[str, Any]) -> str:
    sign = slope.get("sign")
    if sign in _SIGNS:
        return str(sign)
    if finite(slope.get("value")) is None:
        return "unknown"
    lo, hi = finite(slope.get("ci_low")), finite(slope.get("ci_high"))
    return "positive" if lo is not None and lo > 0 else "negative" if hi is not None and hi < 0 \
        else "flat"


def _tone(sign: str, higher_is_better: Any) -> str:
    """``"bad"`` when the metric drifts the wrong way, ``"good"`` the right way, else ``""``."""
    if sign not in ("negative", "positive") or not isinstance(higher_is_better, bool):
        return ""
    return "good" if (sign == "positive") == higher_is_better else "bad"


def _metrics(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metrics in the summary's order, then any that only the groups or turns mention."""
    out: dict[str, dict[str, Any]] = {}
    for m in as_list(summary.get("metrics")):
        m = as_map(m)
        if m.get("id") is None or str(m.get("id")) in out:
            continue
        hib = m.get("higher_is_better")
        rng = metric_range(m)
        out[str(m["id"])] = {
            "id": str(m["id"]), "label": fmt_text(m.get("label") or m.get("id")),
            "higher_is_better": hib if isinstance(hib, bool) else None,
            "threshold": finite(m.get("threshold")), "range": rng,
            "direction": "higher" if hib is True else "lower" if hib is False else DASH,
            "threshold_text": _minus(fmt_num(m.get("threshold"))),
            "range_text": _minus(f"{fmt_num(rng[0])} – {fmt_num(rng[1])}") if rng else
            "none (raw units)"}
    extra = [k for g in as_list(summary.get("groups")) for k in as_map(as_map(g).get("metrics"))]
    extra += [k for c in as_list(summary.get("conversations"))
              for t in as_list(as_map(c).get("turns")) for k in as_map(as_map(t).get("metrics"))]
    for k in extra:
        if str(k) not in out:
            out[str(k)] = {"id": str(k), "label": str(k), "higher_is_better": None,
                           "threshold": None, "range": None, "direction": DASH,
                           "threshold_text": DASH, "range_text": "none (raw units)"}
    colours = _colours(list(out))
    for k, m in out.items():
        m["colour"] = colours[k]
    return list(out.values())


def _colours(ids: list[str]) -> dict[str, str]:
    from personae.report import plots

    # Fixed by position in the run's metric list, so a metric has one colour on every plot.
    palette = ["#1f77b4", "#ff7f0e", *plots._SPARE_COLORS]
    return {k: palette[i % len(palette)] for i, k in enumerate(ids)}


def _run_facts(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = as_map(run.get("counts"))
    stops = as_map(run.get("stop_reasons"))
    stop_text = ", ".join(f"{k} {fmt_int(v)}" for k, v in stops.items() if finite(v)) or DASH
    facts = [
        ("Model", fmt_text(run.get("model"))),
        ("Judge", fmt_text(run.get("judge")) if run.get("judge") else "none"),
        ("Personas", fmt_text(run.get("personas"))),
        ("User personas", fmt_text(run.get("user_personas")) if run.get("user_personas")
         else "none"),
        ("Mode", fmt_text(run.get("mode"))),
        ("Turn policy", fmt_text(run.get("policy"))),
        ("Max turns", fmt_int(run.get("max_turns"))),
        ("Context window", fmt_int(run.get("window"))),
        ("Conversations", (f"{fmt_int(counts.get('finished'))} finished of "
                           f"{fmt_int(counts.get('conversations', run.get('n_conversations')))}")),
        ("Turns", fmt_int(counts.get("turns"))),
        ("Failed calls", fmt_int(counts.get("failed_calls"))),
        ("Stop reasons", stop_text),
        ("Seed", fmt_int(run.get("seed"))),
        ("Duration", fmt_duration(run.get("duration_s"))),
        ("Created", fmt_text(run.get("created"))),
        ("personae version", fmt_text(run.get("personae_version"))),
        ("Run directory", fmt_text(run.get("run_dir"))),
    ]
    bad = {"Failed calls": counts.get("failed_calls")}
    return [{"label": k, "value": v, "bad": (finite(bad.get(k)) or 0) > 0} for k, v in facts]


def _group(g: Mapping[str, Any], index: int, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    from personae.report import plots

    values = as_map(g.get("metrics"))
    rows, series, ranges, thresholds = [], [], {}, {}
    for m in metrics:
        if m["id"] not in values:
            continue
        block = as_map(values[m["id"]])
        slope = as_map(block.get("slope"))
        sign = _slope_sign(slope)
        rows.append({"label": m["label"], "id": m["id"], "colour": m["colour"],
                     "slope": fmt_slope(slope), "sign": sign,
                     "tone": _tone(sign, m["higher_is_better"]),
                     "method": fmt_text(slope.get("method")) if slope.get("method") else "",
                     "first_past": fmt_first(block.get("first_past"))
                     if m["threshold"] is not None else DASH})
        series.append((m["label"], m["colour"], [as_map(p) for p in as_list(block.get("curve"))]))
        ranges[m["label"]] = m["range"]
        thresholds[m["label"]] = m["threshold"]
    label = fmt_text(g.get("label") or g.get("id"))
    svg = plots.drift_curves_svg(series, ranges=ranges, thresholds=thresholds,
                                 title=f"Metrics by turn: {label}",
                                 salt=f"simulate-drift-{index}") if series else None
    fop = as_map(g.get("first_out_of_persona"))
    per_conv = ", ".join(fmt_int(t) if t is not None else "never"
                         for t in as_list(fop.get("turns")))
    return {"id": fmt_text(g.get("id")), "label": label, "role": fmt_text(g.get("role")),
            "n_conversations": fmt_int(g.get("n_conversations")), "rows": rows, "svg": svg,
            "first_out": fmt_first(g.get("first_out_of_persona")), "first_out_each": per_conv}


def _badges(values: Mapping[str, Any], metrics: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for m in metrics:
        if m["id"] not in values:
            continue
        v = finite(values[m["id"]])
        leak = m["id"] == "leak"
        out.append({"id": m["id"], "label": m["label"],
                    "value": _minus(fmt_int(v) if leak else fmt_num(v)),
                    "bad": leak and v == 1})
    return out


def _conversation(c: Mapping[str, Any], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    first = {str(k): finite(v) for k, v in as_map(c.get("first_out_of_persona")).items()}
    agents = [as_map(a) for a in as_list(c.get("agents"))]
    names = {str(a.get("id")): fmt_text(a.get("name") or a.get("id")) for a in agents}
    turns = []
    for t in as_list(c.get("turns")):
        t = as_map(t)
        speaker = str(t.get("speaker"))
        k, cut = finite(t.get("turn")), first.get(speaker)
        badges = _badges(as_map(t.get("metrics")), metrics)
        out_of = "first" if k is not None and cut is not None and k == cut else \
            "after" if k is not None and cut is not None and k > cut else ""
        turns.append({
            "name": fmt_text(t.get("name") or names.get(speaker) or t.get("speaker")),
            "speaker": fmt_text(t.get("speaker")), "turn": fmt_int(t.get("turn")),
            "index": fmt_int(t.get("index")),
            "text": "" if t.get("text") is None else str(t.get("text")),
            "latency": fmt_num(t.get("latency_s")), "badges": badges,
            "leak": any(b["bad"] for b in badges), "out_of_persona": out_of,
            "cut": fmt_int(cut), "side": "user" if _role(agents, speaker) == "user" else ""})
    return {"id": fmt_text(c.get("id")), "stop_reason": fmt_text(c.get("stop_reason")),
            "n_turns": fmt_int(c.get("n_turns") if c.get("n_turns") is not None
                               else len(turns)),
            "agents": [{"name": fmt_text(a.get("name") or a.get("id")),
                        "id": fmt_text(a.get("id")), "role": fmt_text(a.get("role")),
                        "first_out": f"turn {fmt_int(first.get(str(a.get('id'))))}"
                        if first.get(str(a.get("id"))) is not None else "never"}
                       for a in agents],
            "leaks": sum(1 for t in turns if t["leak"]), "turns": turns}


def _role(agents: list[Mapping[str, Any]], speaker: str) -> str:
    return next((str(a.get("role")) for a in agents if str(a.get("id")) == speaker), "")


def render_simulate_html(summary: Mapping[str, Any]) -> str:
    """The report of one simulate run as a self-contained HTML document (deterministic).

    >>> page = render_simulate_html({"run": {"run_dir": "runs/x"}})
    >>> page.startswith("<!DOCTYPE html>") and "No agents" in page
    True
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, not {type(summary).__name__}")
    run = as_map(summary.get("run"))
    metrics = _metrics(summary)
    groups = [as_map(g) for g in as_list(summary.get("groups"))]
    convs = [_conversation(as_map(c), metrics) for c in as_list(summary.get("conversations"))]
    shown = summary.get("conversations_shown")
    total = summary.get("conversations_total")
    return template_env().get_template("simulate.html.j2").render(
        run_dir=fmt_text(run.get("run_dir")), version=fmt_text(run.get("personae_version")),
        facts=_run_facts(run),
        warnings=[str(w) for w in as_list(summary.get("warnings")) if w],
        metrics=metrics,
        groups=[_group(g, i, metrics) for i, g in enumerate(groups[:MAX_GROUPS])],
        groups_hidden=max(0, len(groups) - MAX_GROUPS),
        conversations=convs,
        shown=fmt_int(shown if shown is not None else len(convs)),
        total=fmt_int(total if total is not None else run.get("n_conversations")))


def write_simulate_report(summary: Mapping[str, Any], out_dir: Path | str) -> Path:
    """Write ``out_dir/report.html`` atomically and return its path."""
    target = Path(out_dir) / REPORT_NAME
    atomic_write(target, render_simulate_html(summary), mode=0o644)
    return target
