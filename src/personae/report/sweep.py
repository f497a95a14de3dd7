"""Render the summary of a ``personae steer sweep`` run: ``report.html``, ``sweep.md`` (the
Markdown table) and ``sweep.svg`` (one panel per measure).

The summary is what :func:`personae.steer.sweep.summarise` returns (``config``,
``instrument``, ``rows``, ``trends``, ``coherent_everywhere``, ``unsteered_perplexity``),
with or without the run header on top (``kind``, ``schema_version``, ``run_dir``,
``created``, ``duration_s``, ``counts``, ``warnings``): the header's facts are shown when
present. Same conventions as the other reports (:mod:`personae.report.html`): one page that
extends ``base.html.j2``, inline CSS and SVG, every run string escaped by jinja2's
autoescaping, missing numbers shown as "—".
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
    fmt_mv,
    fmt_n,
    fmt_num,
    fmt_text,
    template_env,
)
from personae.stats import MetricValue
from personae.steer.sweep import MEASURES

__all__ = [
    "format_table",
    "instrument_legend",
    "measure_label",
    "plot_svg",
    "render_sweep_html",
    "sweep_artifacts",
    "verdict",
    "write_sweep_report",
]

TABLE_NAME = "sweep.md"
PLOT_NAME = "sweep.svg"
# Decimals per measure, in the Markdown table and the HTML one alike.
DIGITS = {"instrument": 2, "text": 3, "projection": 2, "perplexity": 1}
# Header counts whose non-zero value is shown in red.
BAD_COUNTS = ("failed_calls", "failure", "failures", "errors")


# --------------------------------------------------------------------------- text


def measure_label(summary: Mapping[str, Any], name: str) -> str:
    """A measure's column name; the instrument's names its domain and direction.

    >>> measure_label({"instrument": {"label": "E Extraversion, reversed"}}, "instrument")
    'instrument (E Extraversion, reversed)'
    """
    if name == "instrument":
        label = (summary.get("instrument") or {}).get("label") or "no scale"
        return f"instrument ({label})"
    return "text score" if name == "text" else name


def format_table(summary: Mapping[str, Any]) -> str:
    """The per-coefficient table (Markdown), then one line per measure: does it move?

    >>> mv = {"value": 1.0, "ci_low": None, "ci_high": None, "n": 1}
    >>> s = {"config": {"relative": False, "coherence_ratio": 2.0}, "trends": {},
    ...      "rows": [{"coefficient": 0.0, "coherent": True,
    ...                **{m: mv for m in ("instrument", "text", "projection", "perplexity")}}]}
    >>> print(format_table(s).splitlines()[2])
    | 0 | 1.00 n=1 | 1.000 n=1 | 1.00 n=1 | 1.0 n=1 | yes |
    """
    unit = " (× residual norm)" if summary["config"].get("relative") else " (absolute)"
    head = (f"| coefficient{unit} | " + " | ".join(measure_label(summary, m) for m in MEASURES)
            + " | coherent |\n|---:|---|---|---|---|---|\n")
    lines = []
    for r in summary["rows"]:
        cells = [f"{r['coefficient']:g}"]
        for name, spec in (("instrument", ".2f"), ("text", ".3f"), ("projection", ".2f"),
                           ("perplexity", ".1f")):
            cells.append(format(MetricValue(**r[name]), spec))
        cells.append("yes" if r["coherent"] else "no")
        lines.append("| " + " | ".join(cells) + " |")
    verdicts = [f"- {measure_label(summary, name)}: {verdict(summary, name)}"
                for name in MEASURES]
    legend = instrument_legend(summary)
    return (head + "\n".join(lines) + "\n\n" + "\n".join(verdicts) + "\n"
            + (f"\n{legend}\n" if legend else ""))


def instrument_legend(summary: Mapping[str, Any]) -> str:
    """One line on what the instrument column is (empty when it was not measured).

    >>> legend = instrument_legend({"instrument": {"questionnaire": "Q", "scale": "E",
    ...                                            "trait": "shy", "sign": -1, "items": 2}})
    >>> for part in legend.split("; "):
    ...     print(part)
    instrument: Q domain E, mean keyed item score over 2 items
    reversed: shy is expected to lower it.
    """
    ins = summary.get("instrument") or {}
    if not ins.get("scale"):
        return ""
    trait = ins.get("trait") or "the trait"
    name = f" ({ins['scale_name']})" if ins.get("scale_name") else ""
    way = (f"reversed: {trait} is expected to lower it" if ins.get("sign", 1) < 0
           else f"{trait} is expected to raise it")
    return (f"instrument: {ins.get('questionnaire') or ins.get('instrument')} domain "
            f"{ins['scale']}{name}, mean keyed item score over {ins.get('items', 0)} items; "
            f"{way}.")


def verdict(summary: Mapping[str, Any], name: str) -> str:
    """One line on a measure: does it move with the coefficient (for perplexity: does
    coherence hold)?

    >>> s = {"trends": {"text": {"rho": {"rho": 0.9, "ci_low": 0.7, "ci_high": 0.97, "n": 20},
    ...                          "direction": 1, "moves": True, "expected": 1}}}
    >>> verdict(s, "text"), verdict(s, "projection")
    ('MOVES (means up, as expected; Spearman rho 0.90 [0.70, 0.97] n=20)', 'not measured')
    """
    t = summary["trends"].get(name)
    if t is None:
        return "not measured"
    if name == "perplexity":
        broken = [f"{r['coefficient']:g}" for r in summary["rows"] if not r["coherent"]]
        limit = f"{summary['config']['coherence_ratio']:g}× unsteered"
        return (f"coherence holds everywhere (within {limit})" if not broken
                else f"coherence breaks at {', '.join(broken)} (over {limit})")
    r = t["rho"]
    rho = MetricValue(value=r["rho"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=r["n"])
    way = {1: "up", -1: "down", 0: "not monotone"}[t["direction"]]
    if t["direction"] and t.get("expected"):
        way += ", as expected" if t["direction"] == t["expected"] else ", OPPOSITE to expected"
    return (f"{'MOVES' if t['moves'] else 'does not move'} (means {way}; "
            f"Spearman rho {rho:.2f})")


def plot_svg(summary: Mapping[str, Any]) -> str | None:
    """One panel per measure (value with CI bars against the coefficient), each titled with
    whether it moves; ``None`` when no measure has a value.

    >>> mv = {"value": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 4}
    >>> s = {"config": {"relative": True, "vector": "v.safetensors", "layer": 3,
    ...                 "coherence_ratio": 2.0}, "trends": {},
    ...      "rows": [{"coefficient": c, "coherent": True, "text": mv, "instrument": mv,
    ...                "projection": mv, "perplexity": mv} for c in (-1.0, 0.0, 1.0)]}
    >>> plot_svg(s).startswith("<svg")
    True
    """
    from personae.report.plots import ci_panels_svg

    rows = summary["rows"]
    notes = {measure_label(summary, name): verdict(summary, name).split(" (")[0]
             for name in MEASURES}
    cfg = summary["config"]
    unit = " × residual norm" if cfg["relative"] else ""
    return ci_panels_svg([r["coefficient"] for r in rows],
                         [(measure_label(summary, name), [r[name] for r in rows])
                          for name in MEASURES],
                         xlabel=f"coefficient{unit}", notes=notes, salt="sweep",
                         title=f"Steering sweep: {Path(cfg['vector']).name} at layer "
                               f"{cfg['layer']}")


# --------------------------------------------------------------------------- HTML


def _coef(c: Any) -> str:
    v = finite(c)
    return DASH if v is None else f"{v:g}"


def _unit(cfg: Mapping[str, Any]) -> str:
    """What the coefficients multiply: ``"× residual norm"``, ``"absolute"`` or ``""``."""
    relative = cfg.get("relative")
    return "× residual norm" if relative else "absolute" if relative is False else ""


def _tone(summary: Mapping[str, Any], name: str) -> str:
    """``"yes"`` (moves as expected, coherence holds), ``"no"`` (moves the opposite way,
    coherence breaks) or ``"na"``: the ``pass-*`` class of a verdict line."""
    t = as_map(as_map(summary.get("trends")).get(name))
    if not t:
        return "na"
    if name == "perplexity":
        return "yes" if all(as_map(r).get("coherent") for r in as_list(summary.get("rows"))) \
            else "no"
    if not t.get("moves"):
        return "na"
    expected = t.get("expected")
    return "no" if expected and t.get("direction") != expected else "yes"


def _verdicts(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    trends = as_map(summary.get("trends"))
    for name in MEASURES:
        try:
            text = verdict(summary, name) if name in trends else "not measured"
        except (AttributeError, KeyError, TypeError, ValueError):
            text = "not readable in this summary"
        out.append({"name": name, "label": measure_label(summary, name), "text": text,
                    "tone": _tone(summary, name)})
    return out


def _rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in as_list(summary.get("rows")):
        r = as_map(r)
        coherent = r.get("coherent")
        rows.append({
            "coefficient": _coef(r.get("coefficient")),
            "baseline": finite(r.get("coefficient")) == 0,
            "cells": [{"text": fmt_mv(r.get(m), DIGITS[m]), "n": fmt_n(r.get(m))}
                      for m in MEASURES],
            "coverage": fmt_mv(r.get("coverage")),
            "responses": fmt_int(r.get("responses")),
            "coherent": "yes" if coherent is True else "no" if coherent is False else "na",
        })
    return rows


def _warnings(summary: Mapping[str, Any]) -> list[str]:
    out = []
    for w in as_list(summary.get("warnings")):
        if isinstance(w, Mapping):
            w = w.get("message") or w.get("text") or dict(w)
        if w is not None and str(w):
            out.append(str(w))
    return out


def _facts(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    cfg, ins = as_map(summary.get("config")), as_map(summary.get("instrument"))
    coefs = ", ".join(_coef(c) for c in as_list(cfg.get("coefficients"))) or DASH
    digest = fmt_text(cfg.get("vector_sha256"))
    ratio = finite(cfg.get("coherence_ratio"))
    coherent = summary.get("coherent_everywhere")
    facts: list[tuple[str, str, bool]] = [
        ("Vector", fmt_text(cfg.get("vector")), False),
        ("Vector sha256", digest[:16] + "…" if len(digest) > 16 else digest, False),
        ("Layer", fmt_int(cfg.get("layer")), False),
        ("Coefficients", coefs, False),
        ("Coefficient unit", _unit(cfg) or DASH, False),
        ("Trait", fmt_text(ins.get("trait") or cfg.get("trait")), False),
        ("Model", fmt_text(cfg.get("model")), False),
        ("Held-out questions", fmt_int(cfg.get("questions")), False),
        ("Max tokens", fmt_int(cfg.get("max_tokens")), False),
        ("Instrument", fmt_text(ins.get("questionnaire") or ins.get("instrument")
                                or cfg.get("instrument")), False),
        ("Scale", fmt_text(ins.get("label")), False),
        ("Unsteered perplexity", fmt_num(summary.get("unsteered_perplexity"), 1), False),
        ("Coherence limit", DASH if ratio is None else f"{ratio:g}× unsteered", False),
        ("Coherent everywhere", "yes" if coherent is True else "no" if coherent is False
         else DASH, coherent is False),
        ("Seed", fmt_int(cfg.get("seed")), False),
    ]
    for key, value in as_map(summary.get("counts")).items():
        label = f"{str(key).replace('_', ' ')} records".capitalize()
        facts.append((label, fmt_int(value), key in BAD_COUNTS and (finite(value) or 0) > 0))
    for key, label in (("duration_s", "Duration"), ("created", "Created"),
                       ("personae_version", "personae version"), ("run_dir", "Run directory"),
                       ("schema_version", "Summary schema")):
        if key in summary:
            value = summary.get(key)
            facts.append((label, fmt_duration(value) if key == "duration_s"
                          else fmt_text(value), False))
    return [{"label": k, "value": v, "bad": bad} for k, v, bad in facts]


def _context(summary: Mapping[str, Any], svg: str | None) -> dict[str, Any]:
    cfg = as_map(summary.get("config"))
    return {
        "run_dir": fmt_text(summary.get("run_dir") or cfg.get("vector")),
        "version": fmt_text(summary.get("personae_version")),
        "facts": _facts(summary),
        "warnings": _warnings(summary),
        "labels": [measure_label(summary, m) for m in MEASURES],
        "unit": _unit(cfg),
        "rows": _rows(summary),
        "verdicts": _verdicts(summary),
        "legend": instrument_legend(summary),
        "svg": svg,
    }


def _plot(summary: Mapping[str, Any]) -> str | None:
    try:
        return plot_svg(summary)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # a summary too incomplete to plot: the page says so


def render_sweep_html(summary: Mapping[str, Any]) -> str:
    """The report of one sweep as a self-contained HTML document (deterministic).

    >>> page = render_sweep_html({"config": {"vector": "v.safetensors"}, "rows": []})
    >>> page.startswith("<!DOCTYPE html>") and "No coefficients" in page
    True
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, not {type(summary).__name__}")
    return _render(summary, _plot(summary))


def _render(summary: Mapping[str, Any], svg: str | None) -> str:
    return template_env().get_template("sweep.html.j2").render(**_context(summary, svg))


def sweep_artifacts(summary: Mapping[str, Any]) -> dict[str, str]:
    """The report's files by name: ``report.html``, ``sweep.md`` and, when there is
    something to plot, ``sweep.svg`` (the plot is drawn once, for the page and the file).

    >>> mv = {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    >>> s = {"config": {"relative": True, "vector": "v.safetensors", "layer": 3,
    ...                 "coherence_ratio": 2.0}, "trends": {},
    ...      "rows": [{"coefficient": 0.0, "coherent": False, "text": mv, "instrument": mv,
    ...                "projection": mv, "perplexity": mv}]}
    >>> sorted(sweep_artifacts(s))
    ['report.html', 'sweep.md']
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, not {type(summary).__name__}")
    svg = _plot(summary)
    out = {REPORT_NAME: _render(summary, svg), TABLE_NAME: format_table(summary)}
    if svg is not None:
        out[PLOT_NAME] = svg + "\n"
    return out


def write_sweep_report(summary: Mapping[str, Any], run_dir: Path | str) -> dict[str, Path]:
    """Write `sweep_artifacts` into ``run_dir``, each file atomically; returns their paths
    by kind: ``html``, ``table`` and (when there is a plot) ``plot``.

    Example (``summary`` from :func:`personae.steer.sweep.summarise`)::

        files = write_sweep_report(summary, "personae-runs/sweep-extroverted-L15-…")
        files["html"]  # …/report.html
    """
    kinds = {REPORT_NAME: "html", TABLE_NAME: "table", PLOT_NAME: "plot"}
    return {kinds[name]: atomic_write(Path(run_dir) / name, text,
                                      mode=0o644 if name == REPORT_NAME else None)
            for name, text in sweep_artifacts(summary).items()}
