"""Render the summary of a ``personae eval`` run as one self-contained HTML file.

The page needs nothing from the network: the CSS and the small filter script are inline, the
plots are inline SVG, and text is drawn with the reader's system fonts. Every string that
comes from the run (persona names, questions, model responses, raw judgements) is escaped by
jinja2's autoescaping; only the SVG produced by :mod:`personae.report.plots` is inserted raw.

Every section except ``run`` may be missing or ``null`` in the summary (a suite that was not
run); the page then says "not run" there. Missing numbers are shown as "—", never as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from personae._files import atomic_write

__all__ = ["render_html", "write_report"]

DASH = "—"
PERSONA_SCORE = "PersonaScore"
REPORT_NAME = "report.html"
# PersonaGym-style rubric scores are 1-5; plots use that range when every value fits in it.
SCORE_RANGE = (1.0, 5.0)

_ENV: SandboxedEnvironment | None = None


# --------------------------------------------------------------------------- formatting


def finite(x: Any) -> float | None:
    """``x`` as a float, or ``None`` for null, NaN, infinities, booleans and non-numbers.

    >>> finite(2), finite(float("nan")), finite(True), finite("3")
    (2.0, None, None, None)
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt_num(x: Any, digits: int = 2) -> str:
    v = finite(x)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_int(x: Any) -> str:
    if isinstance(x, bool):
        return DASH
    if isinstance(x, int):
        return str(x)
    v = finite(x)
    return DASH if v is None else str(int(v)) if v == int(v) else f"{v:.2f}"


def fmt_mv(mv: Any, digits: int = 2) -> str:
    """``"0.52 [0.40, 0.61]"`` for an MV dict, ``"0.52"`` without a CI, ``"—"`` without a value.

    >>> fmt_mv({"value": 0.5234, "ci_low": 0.4, "ci_high": 0.61}), fmt_mv({"value": 1}, 1)
    ('0.52 [0.40, 0.61]', '1.0')
    """
    if not isinstance(mv, Mapping):
        return DASH
    v = fmt_num(mv.get("value"), digits)
    if v == DASH:
        return DASH
    lo, hi = fmt_num(mv.get("ci_low"), digits), fmt_num(mv.get("ci_high"), digits)
    if lo == DASH and hi == DASH:
        return v
    return f"{v} [{lo}, {hi}]"


def fmt_n(mv: Any) -> str:
    return fmt_int(mv.get("n")) if isinstance(mv, Mapping) else DASH


def fmt_duration(seconds: Any) -> str:
    s = finite(seconds)
    if s is None:
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_list(items: Any) -> str:
    if isinstance(items, str):
        return items or DASH
    if isinstance(items, Iterable) and not isinstance(items, Mapping):
        parts = [str(i) for i in items if i is not None]
        return ", ".join(parts) if parts else DASH
    return DASH if items is None else str(items)


def fmt_text(x: Any) -> str:
    return DASH if x is None or x == "" else str(x)


def _ci_sign(mv: Any) -> str:
    """``"pos"``/``"neg"`` when the CI excludes zero, else ``""`` (for delta colouring)."""
    if not isinstance(mv, Mapping):
        return ""
    lo, hi = finite(mv.get("ci_low")), finite(mv.get("ci_high"))
    if lo is not None and lo > 0:
        return "pos"
    if hi is not None and hi < 0:
        return "neg"
    return ""


def as_map(x: Any) -> Mapping[str, Any]:
    """``x`` if it is a mapping, else an empty one (a summary field may be missing or null).

    >>> as_map({"a": 1}), as_map(None)
    ({'a': 1}, {})
    """
    return x if isinstance(x, Mapping) else {}


def as_list(x: Any) -> list[Any]:
    """``x`` as a list if it is a sequence of items (not text, not a mapping), else ``[]``.

    >>> as_list((1, 2)), as_list("ab"), as_list(None)
    ([1, 2], [], [])
    """
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable) or isinstance(x, Mapping):
        return []
    return list(x)


def mv_cell(mv: Any) -> dict[str, str]:
    """A table cell for an MV dict: its text, its n and the sign its CI shows (or ``""``).

    >>> mv_cell({"value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "n": 8})
    {'text': '0.50 [0.10, 0.90]', 'n': '8', 'sign': 'pos'}
    """
    return {"text": fmt_mv(mv), "n": fmt_n(mv), "sign": _ci_sign(mv)}


# --------------------------------------------------------------------------- sections


def _run_section(summary: Mapping[str, Any]) -> dict[str, Any]:
    run = as_map(summary.get("run"))
    counts = as_map(run.get("counts"))
    facts = [
        ("Subject model", fmt_text(run.get("subject"))),
        ("Judges", fmt_list(run.get("judges"))),
        ("Suites", fmt_list(run.get("suites"))),
        ("Question set", fmt_text(run.get("questions"))),
        ("Personas", fmt_int(run.get("n_personas"))),
        ("Probes", fmt_int(run.get("n_probes"))),
        ("Conditions", fmt_list(run.get("conditions"))),
        ("Responses", fmt_int(counts.get("responses"))),
        ("Judgements", fmt_int(counts.get("judgements"))),
        ("Unparsable judgements", fmt_int(counts.get("unparsable_judgements"))),
        ("Failed calls", fmt_int(counts.get("failed_calls"))),
        ("Duration", fmt_duration(run.get("duration_s"))),
        ("Created", fmt_text(run.get("created"))),
        ("personae version", fmt_text(run.get("personae_version"))),
        ("Run directory", fmt_text(run.get("run_dir"))),
    ]
    bad = {
        "Unparsable judgements": finite(counts.get("unparsable_judgements")) or 0,
        "Failed calls": finite(counts.get("failed_calls")) or 0,
    }
    return {
        "facts": [{"label": k, "value": v, "bad": bad.get(k, 0) > 0} for k, v in facts],
        "run_dir": fmt_text(run.get("run_dir")),
        "version": fmt_text(run.get("personae_version")),
        "present": bool(run),
    }


def _conditions(summary: Mapping[str, Any], *blocks: Any) -> list[str]:
    order = [str(c) for c in as_list(as_map(summary.get("run")).get("conditions"))]
    for block in blocks:
        for c in as_map(block):
            if c not in order:
                order.append(str(c))
    return order


def _reliability_section(summary: Mapping[str, Any]) -> dict[str, Any]:
    rel = summary.get("reliability")
    if not isinstance(rel, Mapping):
        return {"state": "unchecked", "verdict": "", "checks": [], "threshold": DASH,
                "present": False}
    reliable = rel.get("reliable")
    state = "reliable" if reliable is True else "unreliable" if reliable is False else "unchecked"
    checks = []
    for check in as_list(rel.get("checks")):
        check = as_map(check)
        passed = check.get("passed")
        note = fmt_text(check.get("note")) if check.get("note") else ""
        chance = finite(check.get("chance"))
        checks.append({
            "name": fmt_text(check.get("name")),
            "label": fmt_text(check.get("label") or check.get("name")),
            "value": fmt_mv(check.get("value")),
            "n": fmt_n(check.get("value")),
            "chance": fmt_num(chance) if chance is not None else "",
            "passed": "yes" if passed is True else "no" if passed is False else "na",
            "note": note,
        })
    return {
        "state": state,
        "verdict": fmt_text(rel.get("verdict")) if rel.get("verdict") else "",
        "threshold": fmt_num(rel.get("threshold"), 3),
        "checks": checks,
        "present": True,
    }


def _fidelity_section(summary: Mapping[str, Any], judge_state: str) -> dict[str, Any] | None:
    fid = summary.get("fidelity")
    if not isinstance(fid, Mapping):
        return None
    from personae.report import plots

    by_cond = as_map(fid.get("by_condition"))
    tasks = [str(t) for t in as_list(fid.get("tasks"))]
    for cond in by_cond.values():
        for t in as_map(as_map(cond).get("tasks")):
            if t not in tasks:
                tasks.append(str(t))
    rows = [*tasks, PERSONA_SCORE]
    conditions = _conditions(summary, by_cond)
    conditions = [c for c in conditions if c in by_cond] or list(by_cond)

    def values_of(block: Any) -> dict[str, Any]:
        block = as_map(block)
        out = dict(as_map(block.get("tasks")))
        out[PERSONA_SCORE] = block.get("persona_score")
        return out

    table = []
    for row in rows:
        cells = []
        for cond in conditions:
            block = as_map(by_cond.get(cond))
            mv = values_of(block).get(row)
            unparsable_map = as_map(block.get("unparsable"))
            if row == PERSONA_SCORE:
                ints = [u for u in unparsable_map.values() if isinstance(u, int)]
                unparsable = str(sum(ints)) if ints else DASH
            else:
                unparsable = fmt_int(unparsable_map.get(row))
            cells.append({**mv_cell(mv), "unparsable": unparsable})
        table.append({"task": row, "total": row == PERSONA_SCORE, "cells": cells})

    series = [(c, plots.condition_color(c, conditions), values_of(by_cond.get(c)))
              for c in conditions]
    scores_svg = plots.dot_plot_svg(
        rows, series, title="PersonaScore per task by condition (CI error bars)",
        xlabel="score", salt="fidelity-tasks", score_range=SCORE_RANGE,
        separator_before=len(tasks))

    # Per-persona heat map (the persona condition).
    per_persona = []
    for p in as_list(fid.get("per_persona")):
        p = as_map(p)
        values = [finite(as_map(p.get("tasks")).get(t)) for t in tasks]
        values.append(finite(p.get("persona_score")))
        per_persona.append({
            "name": fmt_text(p.get("name") or p.get("persona_id")),
            "persona_id": fmt_text(p.get("persona_id")),
            "values": [fmt_num(v) for v in values],
            "raw": values,
        })
    heatmap = plots.heatmap_svg(
        [p["name"] for p in per_persona], rows, [p["raw"] for p in per_persona],
        title="Per-persona scores (persona condition)", salt="fidelity-heatmap",
        score_range=SCORE_RANGE) if per_persona else None

    # Baseline deltas: persona minus each control.
    deltas = as_map(fid.get("deltas"))
    controls = [c for c in _conditions(summary, deltas) if c in deltas]
    delta_table = []
    for row in rows:
        cells = [mv_cell(values_of(deltas.get(c)).get(row)) for c in controls]
        delta_table.append({"task": row, "total": row == PERSONA_SCORE, "cells": cells})
    forest = plots.dot_plot_svg(
        rows,
        [(f"persona − {c}", plots.condition_color(c, conditions), values_of(deltas.get(c)))
         for c in controls],
        title="Persona minus control (paired bootstrap CI)", xlabel="difference in score",
        salt="fidelity-deltas", zero_line=True, separator_before=len(tasks),
    ) if controls else None

    reliable = fid.get("reliable")
    return {
        "tasks": tasks,
        "rows": rows,
        "conditions": conditions,
        "table": table,
        "scores_svg": scores_svg,
        "per_persona": per_persona,
        "heatmap_svg": heatmap,
        "controls": controls,
        "delta_table": delta_table,
        "forest_svg": forest,
        "tag": "unreliable" if reliable is False or judge_state == "unreliable" else judge_state,
    }


def _consistency_section(summary: Mapping[str, Any], judge_state: str) -> dict[str, Any] | None:
    con = summary.get("consistency")
    if not isinstance(con, Mapping):
        return None
    from personae.report import plots

    by_cond = as_map(con.get("by_condition"))
    conditions = [c for c in _conditions(summary, by_cond) if c in by_cond]
    rows = [{"condition": c, **mv_cell(by_cond.get(c))} for c in conditions]
    svg = plots.dot_plot_svg(
        conditions, [("C-score", "#1f77b4", by_cond)],
        title="Consistency (C-score) by condition", xlabel="C-score", salt="consistency",
        zero_line=True) if conditions else None
    labels = as_map(con.get("labels"))
    label_rows = [{"label": k, "count": fmt_int(labels.get(k))}
                  for k in ("entailment", "neutral", "contradiction", "unparsable")]
    label_rows += [{"label": str(k), "count": fmt_int(v)} for k, v in labels.items()
                   if k not in {"entailment", "neutral", "contradiction", "unparsable"}]
    per_persona = []
    for p in as_list(con.get("per_persona")):
        p = as_map(p)
        per_persona.append({
            "name": fmt_text(p.get("name") or p.get("persona_id")),
            "persona_id": fmt_text(p.get("persona_id")),
            **mv_cell(p.get("c_score")),
            "contradicted": [str(f) for f in as_list(p.get("contradicted"))],
        })
    return {"rows": rows, "svg": svg, "labels": label_rows, "per_persona": per_persona,
            "tag": judge_state}


def _atomic_section(summary: Mapping[str, Any], judge_state: str) -> dict[str, Any] | None:
    atom = summary.get("atomic")
    if not isinstance(atom, Mapping):
        return None
    rows = []
    for p in as_list(atom.get("per_persona")):
        p = as_map(p)
        rows.append({
            "name": fmt_text(p.get("name") or p.get("persona_id")),
            "persona_id": fmt_text(p.get("persona_id")),
            "trait": fmt_text(p.get("trait")),
            "target": fmt_text(p.get("target")),
            "mean": fmt_num(p.get("mean")),
            "acc": fmt_num(p.get("acc_atom")),
            "ic": fmt_num(p.get("ic_atom")),
            "rc": fmt_num(p.get("rc_atom")),
            "n_atoms": fmt_int(p.get("n_atoms")),
        })
    overall = as_map(atom.get("overall"))
    overall_rows = [{"metric": label, **mv_cell(overall.get(key))}
                    for key, label in (("acc_atom", "ACC_atom"), ("ic_atom", "IC_atom"),
                                       ("rc_atom", "RC_atom"))]
    codes = as_map(atom.get("codes"))
    code_rows = [{"code": k, "count": fmt_int(codes.get(k))}
                 for k in ("no_trait", "refusal", "unparsable")]
    code_rows += [{"code": str(k), "count": fmt_int(v)} for k, v in codes.items()
                  if k not in {"no_trait", "refusal", "unparsable"}]
    return {"rows": rows, "overall": overall_rows, "codes": code_rows, "tag": judge_state}


def _records_section(summary: Mapping[str, Any]) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    for r in as_list(summary.get("records")):
        r = as_map(r)
        judgements = []
        for j in as_list(r.get("judgements")):
            j = as_map(j)
            judgements.append({"judge": fmt_text(j.get("judge")),
                               "score": fmt_int(j.get("score")),
                               "raw": "" if j.get("raw") is None else str(j.get("raw"))})
        nli = []
        for f in as_list(r.get("nli")):
            f = as_map(f)
            label = f.get("label")
            nli.append({"fact": fmt_text(f.get("fact")),
                        "label": str(label) if label else "unparsable"})
        records.append({
            "persona_name": fmt_text(r.get("persona_name") or r.get("persona_id")),
            "persona_id": fmt_text(r.get("persona_id")),
            "condition": fmt_text(r.get("condition")),
            "task": fmt_text(r.get("task")),
            "probe_id": fmt_text(r.get("probe_id")),
            "question": fmt_text(r.get("question")),
            "response": None if r.get("response") is None else str(r.get("response")),
            "error": None if not r.get("error") else str(r.get("error")),
            "judgements": judgements,
            "nli": nli,
        })
    conditions = sorted({str(r["condition"]) for r in records if r["condition"] != DASH})
    return {"records": records, "conditions": conditions}


# --------------------------------------------------------------------------- public API


def template_env() -> SandboxedEnvironment:
    """The sandboxed, autoescaping environment every report template is rendered in (one,
    built on first use, loading the package's ``templates/``; the reports extend
    ``base.html.j2``).

    >>> template_env() is template_env() and template_env().autoescape
    True
    """
    global _ENV
    if _ENV is None:
        env = SandboxedEnvironment(
            loader=PackageLoader("personae.report", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters.update(num=fmt_num, mv=fmt_mv, n=fmt_n)
        _ENV = env
    return _ENV


def _context(summary: Mapping[str, Any]) -> dict[str, Any]:
    reliability = _reliability_section(summary)
    judge_state = reliability["state"]
    warnings = [str(w) for w in as_list(summary.get("warnings")) if w is not None and str(w)]
    run = _run_section(summary)
    schema = summary.get("schema_version")
    if schema is not None and schema != 1:
        warnings.append(f"This report was written for summary schema version 1; the summary "
                        f"says {schema}. Some sections may be incomplete.")
    return {
        "run": run,
        "run_dir": run["run_dir"],
        "version": run["version"],
        "facts": run["facts"],
        "warnings": warnings,
        "reliability": reliability,
        "fidelity": _fidelity_section(summary, judge_state),
        "consistency": _consistency_section(summary, judge_state),
        "atomic": _atomic_section(summary, judge_state),
        "drill": _records_section(summary),
        "judge_state": judge_state,
    }


def render_html(summary: Mapping[str, Any]) -> str:
    """The report of one eval run as a self-contained HTML document.

    ``summary`` is the dict written to the run's ``summary.json`` (schema version 1). The
    output is deterministic: the same summary always gives the same bytes.
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, not {type(summary).__name__}")
    return template_env().get_template("report.html.j2").render(**_context(summary))


def write_report(summary: Mapping[str, Any], out_dir: Path | str) -> Path:
    """Write ``out_dir/report.html`` atomically and return its path.

    The page is rendered first, written to a temporary file in ``out_dir`` and moved into
    place with :func:`os.replace`, so a reader never sees a half-written report.
    """
    text = render_html(summary)
    target = Path(out_dir) / REPORT_NAME
    atomic_write(target, text, mode=0o644)
    return target

