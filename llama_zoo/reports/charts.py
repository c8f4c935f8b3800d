"""Charts as inline SVG written here: points and bars carry their values (``data-tip``), which the
report's few lines of script show on hover. No charting library: the file stays small (a few
hundred bytes per point), works offline, and there is nothing third-party to keep up to date.

Only measured runs are plotted on a parameter axis: a shadow or random run is not the model whose
size it would be drawn at (the report lists those runs apart). Heatmaps of length x depth (one
per run) and score-by-length lines are drawn twice: real weights in the suite's section, shadow and
random runs, titled as such, inside the section that lists those runs (``draw_code_paths``).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

from llama_zoo.formatting import human

WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 36, 48  # margins: axis labels left and below, the legend right
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d")


def number(value: float) -> str:
    """A value as a reader wants it: four significant digits, no float noise."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 2.5, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def value_range(values: Sequence[float]) -> tuple[float, float]:
    """A y range that shows the points: padded, and never empty when every value is the same."""
    low, high = min(values), max(values)
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return (low - pad if low < 0 or low - pad >= 0 else 0.0), high + pad
    pad = (high - low) * 0.08
    return (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad


def _frame(title: str, x_label: str, y_label: str, body: list[str], legend: list[tuple[str, str]]) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{LEFT}" y="20" class="title">{escape(title)}</text>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
             *body,
             f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" class="axis-label" text-anchor="middle">{escape(x_label)}</text>',
             f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" class="axis-label" '
             f'text-anchor="middle">{escape(y_label)}</text>']
    for i, (name, colour) in enumerate(legend):
        y = TOP + 8 + 18 * i
        parts.append(f'<circle cx="{WIDTH - RIGHT + 16}" cy="{y}" r="5" fill="{colour}"/>'
                     f'<text x="{WIDTH - RIGHT + 26}" y="{y + 4}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _y_axis(low: float, high: float, scale) -> list[str]:
    out = []
    for tick in nice_ticks(low, high):
        if low <= tick <= high:
            y = scale(tick)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                       f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{number(tick)}</text>')
    return out


def metric_vs_params(rows: list[dict[str, Any]], metric: str, log_y: bool = False,
                     published: dict[str, list[tuple[float, str]]] | None = None) -> str | None:
    """One point per measured run: the metric against parameter count (log axis), coloured by
    family; hovering a point shows the model, its size and the value with its interval. Where Meta
    publishes the number for a plotted model (``published``: model id -> values and labels), a
    hollow diamond marks it at the same size."""
    points = [r for r in rows if r["measured"] and r["params"] and metric in r["metrics"]]
    if not points:
        return None
    values = [r["metrics"][metric]["value"] for r in points]
    marks = [(r, value, label) for r in points for value, label in (published or {}).get(r["run"]["model_id"], ())]
    if log_y and min(values) <= 0:
        log_y = False
    params = [math.log10(r["params"]) for r in points]
    x_low, x_high = math.floor(min(params) - 0.05), math.ceil(max(params) + 0.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    transform = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    y_low, y_high = value_range([transform(v) for v in values + [m[1] for m in marks if not log_y or m[1] > 0]])

    def sx(p: float) -> float:
        return LEFT + (p - x_low) / (x_high - x_low) * plot_w

    def sy(v: float) -> float:
        return TOP + plot_h - (v - y_low) / (y_high - y_low) * plot_h

    body = []
    for decade in range(x_low, x_high + 1):
        x = sx(decade)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
                    f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">{human(10 ** decade)}</text>')
    if log_y:
        for tick in nice_ticks(y_low, y_high):
            if y_low <= tick <= y_high:
                body.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" class="grid"/>'
                            f'<text x="{LEFT - 6}" y="{sy(tick) + 4:.1f}" class="tick" text-anchor="end">{number(10 ** tick)}</text>')
    else:
        body += _y_axis(y_low, y_high, sy)
    families = sorted({r["family"] or "other" for r in points})
    colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    for r, p, v in zip(points, params, values):
        m = r["metrics"][metric]
        interval = f" [{number(m['ci_low'])}, {number(m['ci_high'])}]" if m.get("ci_low") is not None else ""
        tip = f"{r['run']['model_id']} · {human(r['params'])} params · {metric} {number(v)}{interval}"
        body.append(f'<circle class="point" cx="{sx(p):.1f}" cy="{sy(transform(v)):.1f}" r="6" '
                    f'fill="{colour[r["family"] or "other"]}" data-tip="{escape(tip)}"><title>{escape(tip)}</title></circle>')
    for r, value, label in marks:
        if log_y and value <= 0:
            continue
        x, y = sx(math.log10(r["params"])), sy(transform(value))
        body.append(f'<polygon class="point published" points="{x:.1f},{y - 7:.1f} {x + 7:.1f},{y:.1f} {x:.1f},{y + 7:.1f} '
                    f'{x - 7:.1f},{y:.1f}" fill="none" stroke="{colour[r["family"] or "other"]}" stroke-width="2" '
                    f'data-tip="{escape(label)}"><title>{escape(label)}</title></polygon>')
    legend = [(f, colour[f]) for f in families] + ([("◇ Meta's card", "#ffffff")] if marks else [])
    return _frame(f"{metric} against model size (measured runs only)", "parameters (log scale)",
                  metric + (" (log scale)" if log_y else ""), body, legend)


def by_option(rows: list[dict[str, Any]], metric: str, group: str, series: str, *, measured: bool = True
              ) -> str | None:
    """Bars of ``metric`` per (model, value of the ``group`` option), one series per value of the
    ``series`` option (HumanEval-Infilling: pass@1 per subset, PSM beside SPM). ``measured`` as in
    ``heatmap``: real weights in the suite's section, shadow and random runs (marked in their labels
    and the title) only in the section that lists them."""
    cells: dict[tuple[str, str, str], float] = {}
    for r in rows:
        options = r["run"]["options"] or {}
        if metric in r["metrics"] and r["measured"] == measured:
            model = r["run"]["model_id"] + ("" if r["measured"] else f" ({r['run']['weights_source']})")
            cells[(model, str(options.get(group)), str(options.get(series)))] = r["metrics"][metric]["value"]
    if not cells:
        return None
    groups = sorted({(m, g) for m, g, _ in cells})
    kinds = sorted({s for _, _, s in cells})
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y_low, y_high = 0.0, value_range(list(cells.values()) + [0.0])[1]

    def sy(v: float) -> float:
        return TOP + plot_h - (v - y_low) / (y_high - y_low) * plot_h

    body = _y_axis(y_low, y_high, sy)
    slot = plot_w / len(groups)
    width = slot * 0.8 / len(kinds)
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    for i, (model, value) in enumerate(groups):
        x0 = LEFT + i * slot + slot * 0.1
        for k, kind in enumerate(kinds):
            if (model, value, kind) not in cells:
                continue
            v = cells[(model, value, kind)]
            tip = f"{model} · {group} {value} · {series} {kind} · {metric} {number(v)}"
            body.append(f'<rect class="bar" x="{x0 + k * width:.1f}" y="{sy(v):.1f}" width="{width * 0.95:.1f}" '
                        f'height="{max(sy(0) - sy(v), 1):.1f}" fill="{colour[kind]}" data-tip="{escape(tip)}">'
                        f'<title>{escape(tip)}</title></rect>')
        body.append(f'<text x="{x0 + slot * 0.4:.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">'
                    f'{escape(value)}</text>')
    what = "measured runs only" if measured else "shadow and random runs: not measurements"
    return _frame(f"{metric} by {group}, per {series} ({what})", group, metric, body,
                  [(k.upper(), colour[k]) for k in kinds])


def _label(row: dict[str, Any]) -> str:
    """A run as a chart names it: its model, and its weights where they are not the model's."""
    return row["run"]["model_id"] + ("" if row["measured"] else f" ({row['run']['weights_source']})")


def score_colour(value: float) -> str:
    """0 red through amber to 1 green (hue 0 to 120), for scores in [0, 1]."""
    hue = 120 * min(1.0, max(0.0, value))
    return f"hsl({hue:.0f}, 70%, 50%)"


def heatmap(rows: list[dict[str, Any]], metric: str, *, measured: bool = True) -> str | None:
    """One length x depth grid per run, from the cells its ``metric`` stores in ``extra["cells"]``
    as ``[length, depth, score, n]`` (a long-context suite's): lengths across, depths down (0% at the
    top), each cell coloured by its score; hovering gives the cell's score and n. ``measured``
    picks the runs: real weights for the report's main section, shadow and random runs (titled as
    such) for the section that lists them apart."""
    out = []
    for r in rows:
        cells = ((r["metrics"].get(metric) or {}).get("extra") or {}).get("cells")
        if r["measured"] != measured or not cells:
            continue
        out.append(_heatmap(r, metric, cells))
    return "".join(out) or None


def _heatmap(row: dict[str, Any], metric: str, cells: list[list[float]]) -> str:
    lengths = sorted({int(c[0]) for c in cells})
    depths = sorted({float(c[1]) for c in cells})
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    w, h = plot_w / len(lengths), plot_h / len(depths)
    body = []
    for length, depth, value, n in cells:
        x, y = LEFT + lengths.index(int(length)) * w, TOP + depths.index(float(depth)) * h
        tip = f"{_label(row)} · length {int(length):,} · depth {float(depth):g}% · {metric} {number(value)} (n={n})"
        body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w * 0.98:.1f}" height="{h * 0.96:.1f}" '
                    f'fill="{score_colour(value)}" data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>')
    for i, length in enumerate(lengths):
        body.append(f'<text x="{LEFT + (i + 0.5) * w:.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">'
                    f'{human(length)}</text>')
    for j, depth in enumerate(depths):
        body.append(f'<text x="{LEFT - 6}" y="{TOP + (j + 0.5) * h + 4:.1f}" class="tick" text-anchor="end">{depth:g}%</text>')
    what = "" if row["measured"] else f" — {row['run']['weights_source']} weights: not a measurement"
    title = f"{metric} by length and depth: {row['run']['model_id']} (run {row['run']['id'][:12]}){what}"
    return _frame(title, "prompt length (tokens)", "depth", body,
                  [(f"{metric} 1", score_colour(1)), (f"{metric} 0.5", score_colour(0.5)), (f"{metric} 0", score_colour(0))])


def by_length(rows: list[dict[str, Any]], metric: str, *, measured: bool = True) -> str | None:
    """``metric`` against prompt length, one line per run, from its ``length/<L>/<metric>`` metrics
    (a long-context suite's); hovering a point gives the run, the length and the value with its
    interval. ``measured`` as in ``heatmap``: shadow runs are drawn only in their own section."""
    lines = []
    for r in rows:
        points = sorted((int(name.split("/")[1]), m) for name, m in r["metrics"].items()
                        if name.startswith("length/") and name.endswith("/" + metric) and name.split("/")[1].isdigit())
        if r["measured"] == measured and points:
            lines.append((r, points))
    if not lines:
        return None
    xs = [x for _, points in lines for x, _ in points]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low * 0.9, x_high * 1.1
    values = [m["value"] for _, points in lines for _, m in points]
    y_low, y_high = min(0.0, min(values)), max(1.0, max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + (v - x_low) / (x_high - x_low) * plot_w

    def sy(v: float) -> float:
        return TOP + plot_h - (v - y_low) / (y_high - y_low) * plot_h

    body = _y_axis(y_low, y_high, sy)
    for tick in sorted(set(xs)):
        body.append(f'<text x="{sx(tick):.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">{human(tick)}</text>')
    legend = []
    for i, (r, points) in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        legend.append((_label(r), colour))
        path = " ".join(f"{sx(x):.1f},{sy(m['value']):.1f}" for x, m in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, m in points:
            interval = f" [{number(m['ci_low'])}, {number(m['ci_high'])}]" if m.get("ci_low") is not None else ""
            tip = f"{_label(r)} · length {x:,} · {metric} {number(m['value'])}{interval} (n={m.get('n')})"
            body.append(f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(m["value"]):.1f}" r="5" fill="{colour}" '
                        f'data-tip="{escape(tip)}"><title>{escape(tip)}</title></circle>')
    what = "measured runs only" if measured else "shadow and random runs: not measurements"
    return _frame(f"{metric} against prompt length ({what})", "prompt length (tokens)", metric, body, legend)


def trade_off(rows: list[dict[str, Any]], metric: str, x_metric: str, series: str, *, measured: bool = True
              ) -> str | None:
    """One point per run: ``metric`` (attack success) against ``x_metric`` (utility), both rates
    on [0, 1] axes, coloured by the run's ``series`` option (its defence; "none" without one);
    hovering gives the run, its defence and both values with their intervals. The card's trade-off:
    a defence is good where it moves a model's point down without moving it left. ``measured`` as
    in ``heatmap``."""
    points = [r for r in rows if r["measured"] == measured and metric in r["metrics"] and x_metric in r["metrics"]]
    if not points:
        return None
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + v * plot_w

    def sy(v: float) -> float:
        return TOP + plot_h - v * plot_h

    body = _y_axis(0.0, 1.0, sy)
    for tick in nice_ticks(0.0, 1.0):
        body.append(f'<text x="{sx(tick):.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">{number(tick)}</text>')
    kinds = sorted({str((r["run"]["options"] or {}).get(series) or "none") for r in points})
    colour = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}

    def shown(m: dict[str, Any]) -> str:
        interval = f" [{number(m['ci_low'])}, {number(m['ci_high'])}]" if m.get("ci_low") is not None else ""
        return f"{number(m['value'])}{interval}"

    # runs often share a point (no defence and a defence that never fired): each series a size
    # smaller than the one before, drawn after it, so every one stays visible
    for r in sorted(points, key=lambda r: kinds.index(str((r["run"]["options"] or {}).get(series) or "none"))):
        kind = str((r["run"]["options"] or {}).get(series) or "none")
        y, x = r["metrics"][metric], r["metrics"][x_metric]
        tip = f"{_label(r)} · {series} {kind} · {metric} {shown(y)} · {x_metric} {shown(x)}"
        radius = max(3, 9 - 2 * kinds.index(kind))
        body.append(f'<circle class="point" cx="{sx(x["value"]):.1f}" cy="{sy(y["value"]):.1f}" r="{radius}" '
                    f'fill="{colour[kind]}" data-tip="{escape(tip)}"><title>{escape(tip)}</title></circle>')
    what = "measured runs only" if measured else "shadow and random runs: not measurements"
    return _frame(f"{metric} against {x_metric} ({what})", x_metric, metric, body,
                  [(k if len(k) <= 18 else k[:17] + "…", colour[k]) for k in kinds])


# kinds drawn once per section: real weights in the main one, shadow and random runs apart
PER_SECTION = {"heatmap": heatmap, "by_length": by_length}


def draw(chart, rows: list[dict[str, Any]], published: dict[str, list[tuple[float, str]]] | None = None) -> str | None:
    """A chart a suite declared (``llama_zoo.suites.core.base.Chart``), or None where there is nothing
    to draw; ``published``: Meta's numbers per model id, marked on a chart against model size."""
    if chart.kind == "metric_vs_params":
        return metric_vs_params(rows, chart.metric, log_y=chart.log_y, published=published)
    if chart.kind == "by_option":
        return by_option(rows, chart.metric, chart.group, chart.series)
    if chart.kind == "trade_off":
        return trade_off(rows, chart.metric, chart.x_metric, chart.series, measured=True)
    if chart.kind in PER_SECTION:
        return PER_SECTION[chart.kind](rows, chart.metric, measured=True)
    raise ValueError(f"unknown chart kind {chart.kind!r}")


def draw_code_paths(chart, rows: list[dict[str, Any]]) -> str | None:
    """A declared chart of the shadow and random runs, for the report's section that lists them
    apart (only kinds drawn per run or per line; the others mark such runs themselves or leave them out)."""
    if chart.kind == "trade_off":
        return trade_off(rows, chart.metric, chart.x_metric, chart.series, measured=False)
    if chart.kind == "by_option":
        return by_option(rows, chart.metric, chart.group, chart.series, measured=False)
    if chart.kind in PER_SECTION:
        return PER_SECTION[chart.kind](rows, chart.metric, measured=False)
    return None
