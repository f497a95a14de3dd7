"""Render the summary of a ``personae survey`` run as one self-contained HTML file.

Same conventions as the eval report (:mod:`personae.report.html`): inline CSS and SVG, no
network, every run string escaped by jinja2's autoescaping, missing numbers shown as "—".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from personae._files import atomic_write
from personae.report.html import (
    REPORT_NAME,
    as_list,
    as_map,
    finite,
    fmt_duration,
    fmt_int,
    fmt_list,
    fmt_mv,
    fmt_num,
    fmt_text,
    mv_cell,
    template_env,
)

__all__ = ["render_survey_html", "write_survey_report"]

LIKERT = (1.0, 5.0)
MAX_DOT_SERIES = 7



def _run_facts(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = as_map(run.get("counts"))
    facts = [
        ("Model", fmt_text(run.get("model"))),
        ("Instrument", fmt_text(run.get("title"))),
        ("Mode", fmt_text(run.get("mode"))),
        ("Variants", fmt_list(run.get("variants"))),
        ("Trait shaping", "yes" if run.get("shape") else "no"),
        ("Personas", fmt_text(run.get("personas")) if run.get("personas") else "none (bare model)"),
        ("Respondents", fmt_int(run.get("n_respondents"))),
        ("Items", f"{fmt_int(run.get('n_items'))} of {fmt_int(run.get('items_in_instrument'))}"),
        ("Answers", f"{fmt_int(counts.get('answers'))} of {fmt_int(counts.get('expected'))}"),
        ("Unparsable answers", fmt_int(counts.get("unparsable"))),
        ("Failed calls", fmt_int(counts.get("failed_calls"))),
        ("Seed", fmt_int(run.get("seed"))),
        ("Duration", fmt_duration(run.get("duration_s"))),
        ("Created", fmt_text(run.get("created"))),
        ("personae version", fmt_text(run.get("personae_version"))),
        ("Run directory", fmt_text(run.get("run_dir"))),
    ]
    bad = {"Unparsable answers": counts.get("unparsable"), "Failed calls":
           counts.get("failed_calls")}
    return [{"label": k, "value": v, "bad": (finite(bad.get(k)) or 0) > 0} for k, v in facts]


def _scores(summary: Mapping[str, Any], domains: list[tuple[str, str]]) -> dict[str, Any]:
    from personae.report import plots

    admins = [as_map(a) for a in as_list(summary.get("scores"))]
    plain = [a for a in admins if a.get("shape") is None]
    rows = []
    for a in plain:
        rows.append({
            "label": fmt_text(a.get("label")), "variant": fmt_text(a.get("variant")),
            "cells": [mv_cell(as_map(a.get("domains")).get(d)) for d, _ in domains],
            "acquiescence": fmt_num(a.get("acquiescence")),
            "unparsable": fmt_mv(a.get("unparsable")),
            "coverage": fmt_mv(a.get("coverage")) if a.get("coverage") else "—",
            "n": fmt_int(a.get("n_items")),
        })
    names = [n for _, n in domains]
    svg = None
    if plain and len(plain) <= MAX_DOT_SERIES:
        order = [f"{a.get('label')} · {a.get('variant')}" for a in plain]
        series = [(name, plots.condition_color(name, order),
                   {n: as_map(a.get("domains")).get(d) for d, n in domains})
                  for name, a in zip(order, plain, strict=True)]
        svg = plots.dot_plot_svg(names, series, title="Domain means (95% CI over items)",
                                 xlabel="domain mean (1-5)", salt="survey-domains",
                                 score_range=LIKERT)
    elif plain:
        svg = plots.heatmap_svg(
            [f"{a.get('label')} · {a.get('variant')}" for a in plain], names,
            [[as_map(as_map(a.get("domains")).get(d)).get("value") for d, _ in domains]
             for a in plain], title="Domain means", salt="survey-heatmap", score_range=LIKERT)
    return {"rows": rows, "svg": svg}


def _reliability(summary: Mapping[str, Any]) -> dict[str, Any]:
    rel = as_map(summary.get("reliability"))
    rows = [{"domain": d, "name": fmt_text(e.get("name")), "alpha": fmt_num(e.get("alpha")),
             "omega": fmt_num(e.get("omega")), "n_rows": fmt_int(e.get("n_rows")),
             "n_items": fmt_int(e.get("n_items")),
             "note": fmt_text(e.get("note")) if e.get("note") else ""}
            for d, e in ((d, as_map(e)) for d, e in as_map(rel.get("domains")).items())]
    return {"rows": rows, "units": fmt_text(rel.get("units")),
            "note": fmt_text(rel.get("note")) if rel.get("note") else ""}


def _spread(summary: Mapping[str, Any], variants: list[str]) -> dict[str, Any]:
    rows = []
    for r in as_list(summary.get("spread")):
        r = as_map(r)
        by = as_map(r.get("by_variant"))
        rows.append({"label": fmt_text(r.get("label")), "domain": fmt_text(r.get("domain")),
                     "cells": [fmt_num(by.get(v)) for v in variants],
                     "range": fmt_num(r.get("range")), "sd": fmt_num(r.get("sd"))})
    return {"rows": rows, "variants": variants}


def _shaping(summary: Mapping[str, Any], domains: list[tuple[str, str]]) -> dict[str, Any] | None:
    shaping = summary.get("shaping")
    if not isinstance(shaping, Mapping):
        return None
    rows = []
    for r in as_list(shaping.get("rows")):
        r = as_map(r)
        ci = (f"[{fmt_num(r.get('ci_low'))}, {fmt_num(r.get('ci_high'))}]"
              if r.get("ci_low") is not None else "—")
        rows.append({"domain": fmt_text(r.get("name")), "variant": fmt_text(r.get("variant")),
                     "rho": fmt_num(r.get("rho")), "ci": ci, "n": fmt_int(r.get("n")),
                     "p": fmt_num(r.get("p"), 3), "method": fmt_text(r.get("method"))})
    points = [as_map(p) for p in as_list(shaping.get("points"))]
    variants = list(dict.fromkeys(str(p.get("variant")) for p in points))
    first = variants[0] if variants else None
    names = dict(domains)
    series = []
    for d, _ in domains:
        mine = sorted((p for p in points if p.get("domain") == d and p.get("variant") == first),
                      key=lambda p: p.get("level") or 0)
        if mine:
            series.append((names.get(d, d), [(p.get("level"), p.get("value"), p.get("ci_low"),
                                               p.get("ci_high")) for p in mine]))
    svg = level_plot_svg(series, title=f"Measured domain score by prompted level ({first})",
                         salt="survey-shaping") if series else None
    return {"rows": rows, "svg": svg, "units": fmt_text(shaping.get("units"))}


def _add_bar(lo: list[float], hi: list[float], y: float, low: Any, high: Any) -> None:
    """Append the error bar's lengths below and above ``y`` (0 where a bound is missing)."""
    lo.append(y - low if finite(low) is not None and low <= y else 0.0)
    hi.append(high - y if finite(high) is not None and high >= y else 0.0)


def level_plot_svg(series: Sequence[tuple[str, Sequence[tuple[Any, Any, Any, Any]]]], *,
                   title: str, salt: str) -> str | None:
    """Measured score (with CI bars) against prompted level 1-9, one line per domain, with
    the diagonal a perfectly followed prompt would trace (level 1 → 1, level 9 → 5)."""
    from matplotlib.figure import Figure

    from personae.report import plots

    @plots._styled
    def draw() -> str | None:
        fig = Figure(figsize=(7.5, 4.2), layout="constrained")
        ax = fig.add_subplot()
        ax.grid(True, axis="both")
        ax.plot([1, 9], [1, 5], color="#bbbbbb", linestyle="--", linewidth=0.9,
                label="ideal (1→1, 9→5)")
        drawn = False
        for k, (name, pts) in enumerate(series):
            xs: list[float] = []
            ys: list[float] = []
            lo: list[float] = []
            hi: list[float] = []
            for level, value, low, high in pts:
                x, y = finite(level), finite(value)
                if x is None or y is None:
                    continue
                xs.append(x)
                ys.append(y)
                _add_bar(lo, hi, y, low, high)
            if not xs:
                continue
            drawn = True
            colour = plots._SPARE_COLORS[k % len(plots._SPARE_COLORS)]
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=colour, capsize=3,
                        markersize=4, linewidth=1.2, label=plots._label(name))
        if not drawn:
            return None
        ax.set_xlim(0.5, 9.5)
        ax.set_ylim(0.9, 5.1)
        ax.set_xticks(range(1, 10))
        ax.set_xlabel("prompted level (1 extremely low … 9 extremely high)")
        ax.set_ylabel("measured domain mean")
        fig.legend(loc="outside right upper")
        return plots._to_svg(fig, salt, title)

    return draw()


def _signed(x: Any) -> str:
    v = finite(x)
    # + 0.0 turns the -0.0 that rounding leaves of a tiny negative into 0.0: "+0.00".
    return "—" if v is None else f"{round(v, 2) + 0.0:+.2f}"


def _agreement_row(name: str, r: Mapping[str, Any]) -> dict[str, str]:
    c = as_map(r.get("correlation"))
    ci = (f"[{fmt_num(c.get('ci_low'))}, {fmt_num(c.get('ci_high'))}]"
          if c.get("ci_low") is not None else "—")
    return {"domain": name, "r": fmt_num(c.get("r")), "ci": ci, "n": fmt_int(r.get("n")),
            "p": fmt_num(c.get("p"), 3), "mean_diff": fmt_mv(r.get("mean_difference")),
            "mean_abs_diff": fmt_mv(r.get("mean_abs_difference")),
            "reason": fmt_text(c.get("reason")) if c.get("reason") else "",
            "method": fmt_text(c.get("method"))}


def _declared(summary: Mapping[str, Any], domains: list[tuple[str, str]]
              ) -> dict[str, Any] | None:
    section = summary.get("declared_vs_measured")
    if not isinstance(section, Mapping):
        return None
    rows, points = [], []
    names = dict(domains)
    for row in as_list(section.get("personas")):
        row = as_map(row)
        cells = []
        for d, _ in domains:
            cell = as_map(as_map(row.get("domains")).get(d))
            measured = cell.get("measured")
            cells.append({"declared": fmt_num(cell.get("declared")),
                          "measured": mv_cell(measured),
                          "difference": _signed(cell.get("difference"))})
            m = as_map(measured)
            if finite(cell.get("declared")) is not None and finite(m.get("value")) is not None:
                points.append((names.get(d, d), cell.get("declared"), m.get("value"),
                               m.get("ci_low"), m.get("ci_high")))
        rows.append({"label": fmt_text(row.get("label")), "cells": cells})
    agreement = [_agreement_row(fmt_text(names.get(str(as_map(r).get("domain")),
                                                   as_map(r).get("domain"))), as_map(r))
                 for r in as_list(section.get("by_domain"))]
    if isinstance(section.get("pooled"), Mapping):
        agreement.append(_agreement_row("all (pooled)", as_map(section.get("pooled"))))
    without = [str(x) for x in as_list(section.get("without_traits"))]
    return {"rows": rows, "agreement": agreement, "units": fmt_text(section.get("units")),
            "variant": fmt_text(section.get("variant")), "without": without,
            "svg": declared_plot_svg([n for _, n in domains], points,
                                     title="Measured against declared level",
                                     salt="survey-declared") if points else None}


def declared_plot_svg(order: Sequence[str],
                      points: Sequence[tuple[str, Any, Any, Any, Any]], *, title: str,
                      salt: str) -> str | None:
    """Measured level (with CI bars) against declared level, one colour per domain (in
    ``order``), with the diagonal that measured = declared would trace. ``points``: (domain
    name, declared, measured, CI low, CI high); None when none of them can be drawn.

    >>> svg = declared_plot_svg(["Extraversion"], [("Extraversion", 3, 3.2, 2.9, 3.5)],
    ...                         title="Measured against declared", salt="doc")
    >>> svg.startswith("<svg") and 'aria-label="Measured against declared"' in svg
    True
    """
    from matplotlib.figure import Figure

    from personae.report import plots

    @plots._styled
    def draw() -> str | None:
        fig = Figure(figsize=(6.2, 4.6), layout="constrained")
        ax = fig.add_subplot()
        ax.grid(True, axis="both")
        # The 1-5 square, grown to any value outside it (an instrument on another scale).
        seen = [v for _, x, y, _, _ in points for v in (finite(x), finite(y)) if v is not None]
        lo_s, hi_s = min([LIKERT[0], *seen]), max([LIKERT[1], *seen])
        ax.plot([lo_s, hi_s], [lo_s, hi_s], color="#bbbbbb", linestyle="--", linewidth=0.9,
                label="measured = declared")
        drawn = False
        for k, name in enumerate(order):
            xs: list[float] = []
            ys: list[float] = []
            lo: list[float] = []
            hi: list[float] = []
            # Persona sets reuse a few half-point levels: each domain's points sit a little
            # to the side of the level, so five domains at one level stay apart.
            dodge = (k - (len(order) - 1) / 2) * 0.06
            for domain, declared, value, low, high in points:
                x, y = finite(declared), finite(value)
                if domain != name or x is None or y is None:
                    continue
                xs.append(x + dodge)
                ys.append(y)
                _add_bar(lo, hi, y, low, high)
            if not xs:
                continue
            drawn = True
            colour = plots._SPARE_COLORS[k % len(plots._SPARE_COLORS)]
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=colour, capsize=3,
                        markersize=5, elinewidth=1.0, alpha=0.85, label=plots._label(name))
        if not drawn:
            return None
        ax.set_xlim(lo_s - 0.2, hi_s + 0.2)
        ax.set_ylim(lo_s - 0.2, hi_s + 0.2)
        ax.set_xlabel("declared level (persona traits)")
        ax.set_ylabel("measured domain mean (95% CI)")
        fig.legend(loc="outside right upper")
        return plots._to_svg(fig, salt, title)

    return draw()


def _records(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for r in as_list(summary.get("records")):
        r = as_map(r)
        out.append({"label": fmt_text(r.get("label")), "variant": fmt_text(r.get("variant")),
                    "item": fmt_text(r.get("item_id")), "text": fmt_text(r.get("text")),
                    "domain": fmt_text(r.get("domain")),
                    "keyed": "−" if r.get("reversed") else "+",
                    "value": fmt_num(r.get("value")), "argmax": fmt_num(r.get("argmax"), 0),
                    "coverage": fmt_num(r.get("coverage")),
                    "raw": "" if r.get("raw") is None else str(r.get("raw"))})
    return out


def render_survey_html(summary: Mapping[str, Any]) -> str:
    """The report of one survey run as a self-contained HTML document (deterministic)."""
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping, not {type(summary).__name__}")
    run = as_map(summary.get("run"))
    domains = [(str(as_map(d).get("id")), str(as_map(d).get("name")))
               for d in as_list(summary.get("domains"))]
    variants = [str(v) for v in as_list(run.get("variants"))]
    prompts = as_map(run.get("variant_prompts"))
    return template_env().get_template("survey.html.j2").render(
        run_dir=fmt_text(run.get("run_dir")), version=fmt_text(run.get("personae_version")),
        facts=_run_facts(run), source=fmt_text(run.get("source")),
        licence=fmt_text(run.get("licence")),
        warnings=[str(w) for w in as_list(summary.get("warnings")) if w],
        domains=domains, scores=_scores(summary, domains),
        mode=fmt_text(run.get("mode")),
        variants=[{"id": v, "prompt": fmt_text(prompts.get(v))} for v in variants],
        reliability=_reliability(summary), spread=_spread(summary, variants),
        shaping=_shaping(summary, domains), declared=_declared(summary, domains),
        records=_records(summary),
        truncated=bool(summary.get("records_truncated")))


def write_survey_report(summary: Mapping[str, Any], out_dir: Path | str) -> Path:
    """Write ``out_dir/report.html`` atomically and return its path."""
    target = Path(out_dir) / REPORT_NAME
    atomic_write(target, render_survey_html(summary), mode=0o644)
    return target
