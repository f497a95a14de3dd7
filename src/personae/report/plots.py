"""Inline SVG plots for the eval report.

Every function takes plain data (already cleaned of NaN: missing values are ``None``) and
returns an ``<svg>`` element as a string, ready to embed in HTML, or ``None`` when there is
nothing to draw. The figures are built with matplotlib's object-oriented API (``Figure``, no
pyplot), so nothing touches the global backend or the pyplot figure registry, and they are
released as soon as they are saved. Output is byte-for-byte deterministic: the SVG hash salt
is fixed per plot (which also keeps element ids unique when several plots share one page),
the date metadata is dropped, and text is drawn as paths (no fonts to load).
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

__all__ = [
    "CONDITION_COLORS",
    "ci_panels_svg",
    "condition_color",
    "dot_plot_svg",
    "drift_curves_svg",
    "heatmap_svg",
]

# Stable colours per condition; other condition names get the remaining tab10 colours.
CONDITION_COLORS: dict[str, str] = {
    "persona": "#1f77b4",
    "no_persona": "#ff7f0e",
    "assistant": "#7f7f7f",
}
_SPARE_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#d62728"]

_RC = {
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": True,
    "axes.grid.axis": "x",
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "path.simplify": True,
}

_STRIP = [
    re.compile(r"<\?xml[^>]*\?>\s*", re.DOTALL),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL),
    re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL),
    re.compile(r"<!--.*?-->\s*", re.DOTALL),
]
_ID = re.compile(r'\sid="([^"]+)"')
_REF = re.compile(r'(\sid="|href="#|url\(#)([^")]+)')


def condition_color(name: str, order: Sequence[str] = ()) -> str:
    """The plot colour of a condition (stable for the three standard ones)."""
    if name in CONDITION_COLORS:
        return CONDITION_COLORS[name]
    others = [c for c in order if c not in CONDITION_COLORS]
    idx = others.index(name) if name in others else zlib.crc32(name.encode())
    return _SPARE_COLORS[idx % len(_SPARE_COLORS)]


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _label(text: Any, width: int = 40) -> str:
    """A plot label: shortened, with ``$`` escaped so matplotlib never parses it as math."""
    s = " ".join(str(text).split())
    if len(s) > width:
        s = s[: width - 1].rstrip() + "…"
    return s.replace("\\", "\\\\").replace("$", r"\$")


def _to_svg(fig: Figure, salt: str, title: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"personae-{salt}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    fig.clear()
    svg = buf.getvalue()
    for pattern in _STRIP:
        svg = pattern.sub("", svg)
    # Prefix every id (glyph definitions are not salted) so plots sharing a page never clash.
    ids = set(_ID.findall(svg))
    svg = _REF.sub(lambda m: f"{m[1]}{salt}-{m[2]}" if m[2] in ids else m[0], svg)
    attrs = f'class="plot" role="img" aria-label="{html.escape(title, quote=True)}" '
    return svg.replace("<svg ", "<svg " + attrs, 1).strip()


def _limits(values: list[float], zero: bool, score_range: tuple[float, float] | None
            ) -> tuple[float, float]:
    if not values:
        return (0.0, 1.0)
    lo, hi = min(values), max(values)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if score_range and score_range[0] <= lo and hi <= score_range[1]:
        lo, hi = score_range
    span = hi - lo or 1.0
    return (lo - 0.05 * span, hi + 0.05 * span)


def _styled(func: Callable[..., str | None]) -> Callable[..., str | None]:
    """Run a plot function under the report's matplotlib style, leaving global rcParams alone."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> str | None:
        with matplotlib.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


@_styled
def dot_plot_svg(
    rows: Sequence[str],
    series: Sequence[tuple[str, str, Mapping[str, Mapping[str, Any] | None]]],
    *,
    title: str,
    xlabel: str,
    salt: str,
    zero_line: bool = False,
    score_range: tuple[float, float] | None = None,
    separator_before: int | None = None,
) -> str | None:
    """A grouped horizontal dot plot with CI error bars.

    ``title`` is not drawn (the page shows it as a caption); it labels the SVG for screen readers.

    ``rows`` are the y categories (top to bottom); each series is ``(label, colour, values)``
    where ``values`` maps a row to an MV dict (``value``, ``ci_low``, ``ci_high``, ``n``).
    Returns ``None`` when no series has a single finite value.
    """
    points: list[tuple[int, int, float, float | None, float | None]] = []
    for s_idx, (_label_text, _colour, values) in enumerate(series):
        for r_idx, row in enumerate(rows):
            mv = values.get(row) or {}
            v = _finite(mv.get("value"))
            if v is None:
                continue
            points.append((s_idx, r_idx, v, _finite(mv.get("ci_low")), _finite(mv.get("ci_high"))))
    if not points:
        return None

    k = len(series)
    step = 0.8 / max(k, 1) if k > 1 else 0.0
    height = 0.9 + 0.32 * len(rows) * max(1.0, k * 0.55)
    fig = Figure(figsize=(8.0, height), layout="constrained")
    ax = fig.add_subplot()
    extent: list[float] = []
    for s_idx, (name, colour, _values) in enumerate(series):
        xs, ys, lo_err, hi_err = [], [], [], []
        for p_s, r_idx, v, lo, hi in points:
            if p_s != s_idx:
                continue
            xs.append(v)
            ys.append(r_idx + (s_idx - (k - 1) / 2) * step)
            lo_err.append(v - lo if lo is not None and lo <= v else 0.0)
            hi_err.append(hi - v if hi is not None and hi >= v else 0.0)
            extent += [v] + [x for x in (lo, hi) if x is not None]
        if not xs:
            ax.plot([], [], "o", color=colour, label=_label(name))
            continue
        ax.errorbar(xs, ys, xerr=[lo_err, hi_err], fmt="o", color=colour, ecolor=colour,
                    elinewidth=1.4, capsize=3, markersize=5, label=_label(name))
    if zero_line:
        ax.axvline(0.0, color="#333333", linewidth=0.9, linestyle="--", zorder=0)
    if separator_before is not None and 0 < separator_before < len(rows):
        ax.axhline(separator_before - 0.5, color="#999999", linewidth=0.6)
    ax.set_xlim(*_limits(extent, zero_line, score_range))
    ax.set_yticks(range(len(rows)), [_label(r, 32) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(_label(xlabel, 80))
    if k > 1:
        fig.legend(loc="outside upper left", ncol=min(k, 4), handletextpad=0.3,
                   columnspacing=1.2)
    return _to_svg(fig, salt, title)


@_styled
def heatmap_svg(
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: Sequence[Sequence[Any]],
    *,
    title: str,
    salt: str,
    score_range: tuple[float, float] | None = None,
    annotate_max_rows: int = 80,
) -> str | None:
    """A rows × columns heat map with each value written in its cell; ``None`` cells are grey."""
    import numpy as np

    grid = np.array([[_finite(v) if _finite(v) is not None else np.nan for v in row]
                     for row in values], dtype=float).reshape(len(row_labels), len(col_labels))
    finite = grid[np.isfinite(grid)]
    if finite.size == 0:
        return None
    vmin, vmax = float(finite.min()), float(finite.max())
    if score_range and score_range[0] <= vmin and vmax <= score_range[1]:
        vmin, vmax = score_range
    elif vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5

    import matplotlib as mpl

    cmap = mpl.colormaps["RdYlGn"].with_extremes(bad="#d4d4d4")
    n_rows, n_cols = grid.shape
    fig = Figure(figsize=(1.9 + 1.0 * n_cols + 1.2, 1.3 + 0.34 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(False)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax,
                      aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_cols), [_label(c, 22) for c in col_labels], rotation=30, ha="right",
                  rotation_mode="anchor")
    ax.set_yticks(range(n_rows), [_label(r, 34) for r in row_labels])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if n_cols > 1:
        ax.axvline(n_cols - 1.5, color="white", linewidth=3)
    if n_rows <= annotate_max_rows:
        for i in range(n_rows):
            for j in range(n_cols):
                v = grid[i, j]
                if not math.isfinite(v):
                    ax.text(j, i, "—", ha="center", va="center", color="#666666", fontsize=8)
                    continue
                r, g, b = to_rgb(cmap((v - vmin) / (vmax - vmin)))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "#111111")
    fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02, aspect=max(8, min(25, 4 * n_rows)))
    return _to_svg(fig, salt, title)


@_styled
def ci_panels_svg(
    x: Sequence[float],
    panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    *,
    xlabel: str,
    title: str,
    salt: str,
    notes: Mapping[str, str] | None = None,
) -> str | None:
    """One small panel per measure: its value (with CI bars) against ``x``.

    ``panels`` is ``[(name, [MetricValue dict per x])]``; ``notes`` adds a line under a
    panel's title (e.g. whether the measure moves).
    """
    drawn = [(name, pts) for name, pts in panels if any(_finite(p.get("value")) is not None
                                                       for p in pts)]
    if not drawn:
        return None
    fig = Figure(figsize=(3.0 * len(drawn), 3.0), layout="constrained")
    axes = fig.subplots(1, len(drawn), squeeze=False)[0]
    for ax, (name, pts) in zip(axes, drawn, strict=True):
        xs, ys, lo, hi = [], [], [], []
        for xv, p in zip(x, pts, strict=True):
            y = _finite(p.get("value"))
            if y is None:
                continue
            low, high = _finite(p.get("ci_low")), _finite(p.get("ci_high"))
            xs.append(float(xv))
            ys.append(y)
            lo.append(y - low if low is not None and low <= y else 0.0)
            hi.append(high - y if high is not None and high >= y else 0.0)
        ax.grid(True, axis="both")
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=_SPARE_COLORS[0], capsize=3,
                    markersize=4, linewidth=1.2)
        ax.axvline(0.0, color="#bbbbbb", linewidth=0.8, linestyle="--")
        sub = f"\n{_label(notes[name], 34)}" if notes and name in notes else ""
        ax.set_title(_label(name) + sub)
        ax.set_xlabel(xlabel)
    return _to_svg(fig, salt, title)


@_styled
def drift_curves_svg(
    series: Sequence[tuple[str, str, Sequence[Mapping[str, Any]]]],
    *,
    ranges: Mapping[str, tuple[float, float] | None],
    thresholds: Mapping[str, float | None],
    title: str,
    salt: str,
) -> str | None:
    """Metrics against turn, one line per metric with its CI as a shaded band.

    Each series is ``(label, colour, curve)`` where ``curve`` is a list of points
    (``turn``, ``value``, ``ci_low``, ``ci_high``). A metric with a range in ``ranges``
    (keyed by label) is rescaled to 0–1 so metrics on different scales share one axis;
    metrics without a range go in a second, small panel in raw units. A threshold in
    ``thresholds`` is drawn as a dashed line, on the metric's scale. Returns ``None`` when no
    point has a finite turn and value.
    """
    import numpy as np

    def scaled(label: str) -> Callable[[float | None], float] | None:
        bounds = ranges.get(label)
        if not bounds:
            return None
        lo, hi = _finite(bounds[0]), _finite(bounds[1])
        if lo is None or hi is None or hi <= lo:
            return None
        return lambda v: math.nan if v is None else (v - lo) / (hi - lo)

    prepared = []  # (label, colour, turns, values, lows, highs, threshold, ranged)
    for label, colour, curve in series:
        scale = scaled(label)
        rows = []
        for p in curve:
            turn, value = _finite(p.get("turn")), _finite(p.get("value"))
            if turn is None:
                continue
            rows.append((turn, value, _finite(p.get("ci_low")), _finite(p.get("ci_high"))))
        rows.sort(key=lambda r: r[0])
        if not any(r[1] is not None for r in rows):
            continue
        f = scale or (lambda v: math.nan if v is None else v)
        cols = [np.array([f(r[i]) for r in rows], dtype=float) for i in range(1, 4)]
        threshold = _finite(thresholds.get(label))
        prepared.append((label, colour, np.array([r[0] for r in rows]), *cols,
                         f(threshold) if threshold is not None else None,
                         scale is not None))
    if not prepared:
        return None

    from matplotlib.ticker import MaxNLocator

    panels = [[p for p in prepared if p[-1]], [p for p in prepared if not p[-1]]]
    panels = [p for p in panels if p]
    widths = [3 if panel[0][-1] else 1.6 for panel in panels]
    fig = Figure(figsize=(2.4 * sum(widths) + 0.6, 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    for ax, panel in zip(axes, panels, strict=True):
        ax.grid(True, axis="both")
        extent: list[float] = []
        for label, colour, turns, values, lows, highs, threshold, _ranged in panel:
            band = np.isfinite(lows) & np.isfinite(highs)
            if band.any():
                ax.fill_between(turns, np.where(band, lows, np.nan),
                                np.where(band, highs, np.nan), color=colour, alpha=0.18,
                                linewidth=0)
            ax.plot(turns, values, "o-", color=colour, markersize=3.5, linewidth=1.4,
                    label=_label(label))
            if threshold is not None:
                ax.axhline(threshold, color=colour, linewidth=0.9, linestyle="--", alpha=0.8)
                extent.append(threshold)
            for arr in (values, lows, highs):
                extent += [float(v) for v in arr if math.isfinite(v)]
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("turn (the speaker's own)")
        if panel[0][-1]:
            lo, hi = min([0.0, *extent]), max([1.0, *extent])
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
            ax.set_ylabel("value, rescaled to its range (0–1)")
        else:
            ax.set_ylim(*_limits(extent, False, None))
            ax.set_ylabel("value (raw units)")
            ax.set_title("no fixed range", fontsize=9)
    fig.legend(loc="outside lower center", ncol=min(len(prepared), 3), handletextpad=0.4,
               columnspacing=1.4)
    return _to_svg(fig, salt, title)
