"""``--cxr-html``: one self-contained HTML file (inline CSS and SVG; nothing is fetched, no script).

It shows the verdict and the table, the speedup of each backend, each backend's latency rounds
against its interleaved control's with the gate's ratio interval against the threshold (the data
behind the verdict), the stage breakdown and memory, the throughput test (studies/hour at its
concurrency beside one study at a time, latency under load), and per study: the images (embedded as
``data:`` URIs where RunResults names a readable file), every backend's report and the findings
each asserts, with what differs from eager fp32 highlighted. Every text from the run is escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..backends.registry import REFERENCE_BACKEND
from ..backends.timings import stage_medians
from ..gate.decision import Verdict
from ..results import BackendResult, RunResults
from ..roofline import STAGES
from . import model
from .model import Run

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
# nothing may be fetched: images are data: URIs, styles inline, no script at all
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STAGE_COLOURS = (("vision", "#4e79a7"), ("prefill", "#f28e2b"), ("decode", "#59a14f"))
BATCHED_COLOUR, SEQUENTIAL_COLOUR, FAILED_COLOUR = "#4e79a7", "#a0a0a0", "#e15759"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;
max-width:1400px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
tr.fail td{background:#fde8e8} tr.warn td{background:#fff6dd}
.state-fail{color:#b00020;font-weight:bold} .state-warn{color:#a36b00;font-weight:bold}
.state-ok{color:#1b7f3b}
.diff{background:#ffd6d6;outline:1px solid #d33}
.missing{background:#ffd6d6;text-decoration:line-through}
.report{white-space:pre-wrap;max-width:45em}
.muted{color:#666;font-size:.85em}
.fastest{font-weight:600}
figure{display:inline-block;margin:0 1em 1em 0} figure img{max-height:260px;border:1px solid #aaa}
svg text{font-size:11px;font-family:inherit}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


# ---- small SVG helpers ---------------------------------------------------------------------
def _scale(low: float, high: float, x0: float, x1: float) -> Callable[[float], float]:
    span = (high - low) or 1.0
    return lambda v: x0 + (v - low) / span * (x1 - x0)


def speedup_svg(rows: list[tuple[str, float]]) -> str:
    """Horizontal bars of speedup vs eager fp32, a line at 1x."""
    if not rows:
        return "<p class='muted'>no speedup measured (no interleaved eager control)</p>"
    width, label_w, bar_h = 720, 230, 20
    top = max(1.0, *(v for _, v in rows)) * 1.15
    x = _scale(0.0, top, label_w, width - 60)
    height = bar_h * len(rows) + 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "role='img' aria-label='speedup vs eager fp32'>"]  # fmt: skip
    for i, (name, value) in enumerate(rows):
        y = 5 + i * bar_h
        colour = "#59a14f" if value >= 1 else "#e15759"
        parts.append(f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end'>{e(name)}</text>")
        parts.append(
            f"<rect x='{label_w}' y='{y + 3}' width='{max(1.0, x(value) - label_w):.1f}' "
            f"height='{bar_h - 6}' fill='{colour}'><title>{e(name)}: {value:.2f}x</title></rect>"
        )
        parts.append(f"<text x='{x(value) + 4:.1f}' y='{y + 14}'>{value:.2f}x</text>")
    one = x(1.0)
    bottom = 5 + bar_h * len(rows)
    parts.append(
        f"<line x1='{one:.1f}' x2='{one:.1f}' y1='2' y2='{bottom}' stroke='#333' "
        "stroke-dasharray='4 3'/>"
    )
    parts.append(f"<text x='{one:.1f}' y='{bottom + 14}' text-anchor='middle'>1x (eager)</text>")
    parts.append("</svg>")
    return "".join(parts)


def samples_svg(result: BackendResult) -> str:
    """Every round of the backend and of its control on one seconds axis (medians marked)."""
    series = [(result.label, result.samples_s, "#4e79a7")]
    if result.control_samples_s:
        series.append((f"control ({result.control})", result.control_samples_s, "#999999"))
    values = [v for _, vs, _ in series for v in vs]
    if not values:
        return ""
    width, label_w, row_h = 560, 150, 26
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or high * 0.05 or 1.0
    x = _scale(low - pad, high + pad, label_w, width - 10)
    height = row_h * len(series) + 28
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"role='img' aria-label='rounds of {e(result.label)}'>"]  # fmt: skip
    for i, (name, vs, colour) in enumerate(series):
        y = 14 + i * row_h
        parts.append(f"<text x='{label_w - 6}' y='{y + 4}' text-anchor='end'>{e(name)}</text>")
        for v in vs:
            parts.append(
                f"<circle cx='{x(v):.1f}' cy='{y}' r='3' fill='{colour}' fill-opacity='.6'/>"
            )
        ordered = sorted(vs)
        median = (ordered[(len(vs) - 1) // 2] + ordered[len(vs) // 2]) / 2
        parts.append(
            f"<line x1='{x(median):.1f}' x2='{x(median):.1f}' y1='{y - 9}' y2='{y + 9}' "
            f"stroke='#000' stroke-width='2'><title>median {median:.4f} s</title></line>"
        )
    axis_y = height - 8
    for v in (low, (low + high) / 2, high):
        parts.append(f"<text x='{x(v):.1f}' y='{axis_y}' text-anchor='middle'>{v:.4f} s</text>")
    parts.append("</svg>")
    return "".join(parts)


def ratio_svg(verdict: Verdict) -> str:
    """The gate's estimate of current / baseline (of the ratio to the control), its interval, and
    the decision bounds: the threshold, and half of it (what a regression must surely exceed)."""
    r = verdict.relative
    if r is None or not math.isfinite(r.ratio):
        return ""
    top = 1.0 + verdict.threshold
    margin = math.exp(math.log(top) / 2)
    lo, hi = r.interval if r.interval else (r.ratio, r.ratio)
    low = min(lo, 1 / top, r.ratio) * 0.97
    high = max(hi, top, r.ratio) * 1.03
    width, height = 620, 66
    x = _scale(low, high, 30, width - 90)
    y = 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "role='img' aria-label='latency change vs baseline'>"]  # fmt: skip
    parts.append(f"<line x1='30' x2='{width - 90}' y1='{y}' y2='{y}' stroke='#bbb'/>")
    # labels: the margins above the axis, "no change" and the threshold below, pointing away
    # from each other so that close lines never print over each other
    for value, colour, name, row, anchor, shift in (
        (1.0, "#333", "no change", y + 26, "end", 3),
        (top, "#d33", f"threshold {verdict.threshold:+.0%}", y + 26, "start", -3),
        (1 / margin, "#b07d00", f"{1 / margin - 1:+.0%}", y - 18, "end", 3),
        (margin, "#b07d00", f"{margin - 1:+.0%}", y - 18, "start", -3),
    ):
        parts.append(
            f"<line x1='{x(value):.1f}' x2='{x(value):.1f}' y1='{y - 14}' y2='{y + 14}' "
            f"stroke='{colour}' stroke-dasharray='3 2'/>"
            f"<text x='{x(value) + shift:.1f}' y='{row}' text-anchor='{anchor}' "
            f"fill='{colour}'>{e(name)}</text>"
        )
    colour = "#d33" if verdict.failed else "#1b7f3b"
    parts.append(
        f"<line x1='{x(lo):.1f}' x2='{x(hi):.1f}' y1='{y}' y2='{y}' stroke='{colour}' "
        "stroke-width='6' stroke-opacity='.5'/>"
        f"<circle cx='{x(r.ratio):.1f}' cy='{y}' r='5' fill='{colour}'><title>ratio "
        f"{r.ratio:.3f} [{lo:.3f}, {hi:.3f}]</title></circle>"
        f"<text x='{x(hi) + 8:.1f}' y='{y + 4}' fill='{colour}'>{r.ratio:.3f}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def stages_svg(rows: list[tuple[str, dict[str, float]]]) -> str:
    """Stacked bars of the median seconds of each stage (vision, prefill, decode)."""
    rows = [(n, m) for n, m in rows if m]
    if not rows:
        return "<p class='muted'>no stage timings</p>"
    width, label_w, bar_h = 720, 230, 22
    totals = [m.get("vision_s", 0) + m.get("prefill_s", 0) + m.get("decode_s", 0) for _, m in rows]
    x = _scale(0.0, max(totals) * 1.2 or 1.0, label_w, width - 10)
    height = bar_h * len(rows) + 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "role='img' aria-label='stage breakdown'>"]  # fmt: skip
    for i, (name, medians) in enumerate(rows):
        y = 4 + i * bar_h
        parts.append(f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end'>{e(name)}</text>")
        start = 0.0
        for stage, colour in STAGE_COLOURS:
            value = medians.get(f"{stage}_s", 0.0)
            parts.append(
                f"<rect x='{x(start):.1f}' y='{y + 3}' width='{x(start + value) - x(start):.1f}' "
                f"height='{bar_h - 6}' fill='{colour}'><title>{e(name)} {stage}: "
                f"{value:.4f} s</title></rect>"
            )
            start += value
        parts.append(f"<text x='{x(start) + 4:.1f}' y='{y + 15}'>{start:.3f} s</text>")
    legend_y = height - 6
    for i, (stage, colour) in enumerate(STAGE_COLOURS):
        lx = label_w + i * 90
        parts.append(
            f"<rect x='{lx}' y='{legend_y - 9}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{lx + 14}' y='{legend_y}'>{stage}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def throughput_svg(rows: Sequence[model.ThroughputRow]) -> str:
    """Grouped horizontal bars per backend: studies/hour at its concurrency, and the same
    worklist one study at a time (the speedup written beside the first)."""
    rows = [r for r in rows if r.studies_per_hour is not None]
    if not rows:
        return "<p class='muted'>no throughput measured</p>"
    width, label_w, bar_h, gap = 760, 230, 16, 10
    group = 2 * bar_h + gap
    top = max(max(r.studies_per_hour or 0, r.sequential_studies_per_hour or 0) for r in rows)
    x = _scale(0.0, top or 1.0, label_w, width - 260)  # room for the longest label
    height = group * len(rows) + 34
    label = "studies per hour at each backend's concurrency and one study at a time"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"role='img' aria-label='{label}'><title>{label}</title>"]  # fmt: skip
    for i, r in enumerate(rows):
        y = 4 + i * group
        who = _who(r.machine, r.label)
        parts.append(
            f"<text x='{label_w - 6}' y='{y + bar_h + 4}' text-anchor='end'>{e(who)}</text>"
        )
        extra = f" ({r.speedup_vs_sequential:.2f}x)" if r.speedup_vs_sequential else ""
        if r.verdict_failed:  # the throughput gate judges this bar: say so on it
            extra += f", gate {r.verdict}"
        batched = FAILED_COLOUR if r.verdict_failed else BATCHED_COLOUR
        bars = (
            (r.studies_per_hour, batched, f"C={r.concurrency}", extra),
            (r.sequential_studies_per_hour, SEQUENTIAL_COLOUR, "one at a time", ""),
        )
        for j, (value, colour, what, extra) in enumerate(bars):
            by = y + j * bar_h
            if value is None:
                parts.append(
                    f"<text x='{label_w + 4}' y='{by + 12}' class='muted'>{what}: -</text>"
                )
                continue
            text = f"{value:.0f}/h {what}{extra}"
            parts.append(
                f"<rect x='{label_w}' y='{by + 1}' width='{max(1.0, x(value) - label_w):.1f}' "
                f"height='{bar_h - 2}' fill='{colour}'><title>{e(who)}, {e(text)}</title></rect>"
                f"<text x='{x(value) + 4:.1f}' y='{by + 12}'>{e(text)}</text>"
            )
    legend_y = height - 8
    for i, (what, colour) in enumerate(
        (("at the backend's concurrency C", BATCHED_COLOUR), ("one at a time", SEQUENTIAL_COLOUR))
    ):
        lx = label_w + i * 230
        parts.append(
            f"<rect x='{lx}' y='{legend_y - 9}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{lx + 14}' y='{legend_y}'>{what}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def load_latency_svg(rows: Sequence[model.ThroughputRow]) -> str:
    """A study's latency under load per backend: a bar to p95, a whisker from p50 to p99."""
    rows = [r for r in rows if r.latency_p95_s is not None]
    if not rows:
        return ""
    width, label_w, bar_h = 760, 230, 22
    top = max(r.latency_p99_s or r.latency_p95_s or 0 for r in rows)
    x = _scale(0.0, top or 1.0, label_w, width - 260)  # room for the longest label
    height = bar_h * len(rows) + 12
    label = "latency of a study under load: p95 (bar), p50 to p99 (whisker), seconds"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"role='img' aria-label='{label}'><title>{label}</title>"]  # fmt: skip
    for i, r in enumerate(rows):
        y = 4 + i * bar_h
        who = _who(r.machine, r.label)
        p50, p95, p99 = r.latency_p50_s, r.latency_p95_s or 0.0, r.latency_p99_s
        text = f"p95 {p95:.3f} s"
        if p50 is not None and p99 is not None:
            text += f" (p50 {p50:.3f}, p99 {p99:.3f})"
        parts.append(f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end'>{e(who)}</text>")
        parts.append(
            f"<rect x='{label_w}' y='{y + 4}' width='{max(1.0, x(p95) - label_w):.1f}' "
            f"height='{bar_h - 8}' fill='#76b7b2'><title>{e(who)}: {e(text)}</title></rect>"
        )
        end = x(p95)
        if p50 is not None and p99 is not None:
            end = max(end, x(p99))
            parts.append(
                f"<line x1='{x(p50):.1f}' x2='{x(p99):.1f}' y1='{y + 11}' y2='{y + 11}' "
                "stroke='#333' stroke-width='1.5'/>"
                f"<line x1='{x(p50):.1f}' x2='{x(p50):.1f}' y1='{y + 6}' y2='{y + 16}' "
                "stroke='#333'/>"
                f"<line x1='{x(p99):.1f}' x2='{x(p99):.1f}' y1='{y + 6}' y2='{y + 16}' "
                "stroke='#333'/>"
            )
        parts.append(f"<text x='{end + 6:.1f}' y='{y + 15}'>{e(text)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def throughput_html(runs: Sequence[Run]) -> str:
    """The throughput test: what it ran under, the table (the cost column only with a cost),
    the two charts, and every verdict or batched check worth reading."""
    rows = model.throughput_rows(runs)
    if not rows:
        return ""
    several = len(runs) > 1
    keys = model.throughput_column_keys(rows)
    titles = {key: title for key, title, _ in model.THROUGHPUT_COLUMNS}
    head = (["machine"] if several else []) + ["backend", "status"]
    head += [titles[k] for k in keys]
    parts = [
        "<h2>Throughput (a worklist with several studies in flight)</h2>",
        f"<p>{e(model.throughput_line(runs))}</p>",
        "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>",
    ]
    for row in rows:
        cells = ([row.machine] if several else []) + [row.label]
        tds = "".join(f"<td>{e(c)}</td>" for c in cells)
        tds += f"<td class='state-{row.state}'>{e(row.state)}</td>"
        tds += "".join(f"<td>{e(row.cells[k])}</td>" for k in keys)
        parts.append(f"<tr class='{row.state}'>{tds}</tr>")
    parts.append("</table>")
    parts.append(f"<p class='muted'>{e(model.throughput_note(rows))}</p>")
    parts += ["<h3>Studies per hour</h3>", throughput_svg(rows)]
    latency = load_latency_svg(rows)
    if latency:
        parts += ["<h3>Latency of a study under load</h3>", latency]
    for row in rows:
        who = _who(row.machine, row.label)
        if row.verdict_message:
            parts.append(f"<p><b>{e(who)}: throughput gate: {e(row.verdict)}</b></p>")
            parts.append(f"<pre class='muted'>{e(row.verdict_message)}</pre>")
        if row.equivalence_failures:
            items = "".join(
                f"<li>{e(f)}: {e(m)}</li>" if m else f"<li>{e(f)}</li>"
                for f, m in zip(row.equivalence_failures, row.equivalence_messages, strict=False)
            )
            parts.append(
                f"<p class='state-fail'>{e(who)}: batched equivalence failed</p><ul>{items}</ul>"
            )
    return "".join(parts)


# ---- sections --------------------------------------------------------------------------------
def _who(machine: str, label: str) -> str:
    return model.name(machine, label)


def header_html(runs: Sequence[Run]) -> str:
    title, failing, warning = model.headline(runs)
    cls = "state-fail" if model.any_failed(runs) else "state-ok"
    parts = [f"<h1 class='{cls}'>{e(title)}</h1>"]
    if failing:
        parts.append("<ul>" + "".join(f"<li class='state-fail'>{e(p)}</li>" for p in failing))
        parts.append("</ul>")
    if warning:
        parts.append("<ul>" + "".join(f"<li class='state-warn'>{e(w)}</li>" for w in warning))
        parts.append("</ul>")
    for machine, results in runs:
        where = f"<b>{e(machine)}</b>: " if machine else ""
        parts.append(f"<p class='muted'>{where}{e(model.context_line(results))}</p>")
    parts += [f"<p class='fastest'>{e(f.line())}</p>" for f in model.fastest_equivalent(runs)]
    return "".join(parts)


def table_html(runs: Sequence[Run]) -> str:
    rows = model.rows(runs)
    if not rows:
        return "<p>nothing was measured or checked</p>"
    several = len(runs) > 1
    keys = model.column_keys(runs)
    titles = dict(model.COLUMNS)
    head = (["machine"] if several else []) + ["backend", "status"]
    head += [titles[k] for k in keys]
    parts = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = ([row.machine] if several else []) + [row.label]
        tds = "".join(f"<td>{e(c)}</td>" for c in cells)
        tds += f"<td class='state-{row.state}'>{e(row.state)}</td>"
        tds += "".join(f"<td>{e(row.cells[k])}</td>" for k in keys)
        parts.append(f"<tr class='{row.state}'>{tds}</tr>")
    parts.append("</table>")
    return "".join(parts)


def latency_html(runs: Sequence[Run]) -> str:
    parts: list[str] = []
    for machine, results in runs:
        for result in results.backends.values():
            if not result.samples_s:
                continue
            parts.append(f"<h3>{e(_who(machine, result.label))}</h3>")
            parts.append(samples_svg(result))
            for what, verdict in (("latency", result.gate), ("memory", result.memory_gate)):
                if verdict is None:
                    continue
                parts.append(f"<p><b>{what} gate: {e(verdict.short())}</b></p>")
                parts.append(ratio_svg(verdict))
                parts.append(f"<pre class='muted'>{e(verdict.message)}</pre>")
    return "".join(parts) or "<p class='muted'>no latency rounds</p>"


def memory_html(runs: Sequence[Run]) -> str:
    keys = ("prepare_peak_mib", "generate_peak_mib", "rss_peak_mib", "available_drop_mib")
    head = ["backend", "prepare peak MiB", "generate peak MiB", "RSS peak MiB"]
    head += ["MemAvailable drop MiB", "sample Hz", "memory gate"]
    parts = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for machine, results in runs:
        for result in results.backends.values():
            if not model.shown(result):
                continue
            figures = result.memory.to_dict() if result.memory is not None else {}
            cells = [_who(machine, result.label)]
            cells += [model.fmt(figures.get(k), 1) for k in keys]
            cells.append(model.fmt(figures.get("sample_hz"), 0))
            cells.append(result.memory_gate.short() if result.memory_gate is not None else "-")
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def roofline_html(runs: Sequence[Run]) -> str:
    """Each timed backend's stages against this machine's ceilings: achieved, ceiling, share."""
    notes = [
        f"<p class='muted'>{f'<b>{e(m)}</b>: ' if m else ''}{e(line)}</p>"
        for m, results in runs
        if (line := model.roofline_line(results))
    ]
    head = ["backend", "stage", "achieved", "ceiling", "share of ceiling"]
    rows: list[str] = []
    for machine, results in runs:
        for result in results.backends.values():
            for stage in STAGES:
                d = result.roofline.get(stage)
                if not d:
                    continue
                cells = [
                    _who(machine, result.label),
                    stage,
                    f"{d['achieved']:.3g} {d['unit']}",
                    f"{d['ceiling']:.3g} {d['unit']} ({d['ceiling_name']})",
                    f"{model.percent(d['fraction'])} %",
                ]
                rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return "".join(notes)
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return "".join(notes) + table + "".join(rows) + "</table>"


def _image_src(value: str) -> str | None:
    if value.startswith("data:"):
        return value
    path = Path(value)
    mime = MIME.get(path.suffix.lower())
    try:
        if mime is None or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None


def _finding_key(f: dict[str, Any]) -> tuple[str, str, str]:
    return (str(f.get("label", "")), str(f.get("status", "")), str(f.get("laterality", "")))


def _finding_text(f: dict[str, Any]) -> str:
    side = f.get("laterality") or ""
    side = "" if side in ("", "none", "unspecified") else f" ({side})"
    return f"{f.get('label', '?')}: {f.get('status', '?')}{side}"


def findings_html(check: dict[str, Any] | None, reference: list[dict[str, Any]] | None) -> str:
    """The findings a report asserts; those eager fp32 does not assert (and those it asserts that
    this report misses) highlighted, with the check's differences."""
    if check is None:
        return "<span class='muted'>-</span>"
    found = list(check.get("found") or [])
    expected = list(check.get("expected") or reference or [])
    wanted = {_finding_key(f) for f in expected}
    have = {_finding_key(f) for f in found}
    items = []
    for f in found:
        cls = "" if _finding_key(f) in wanted else " class='diff'"
        items.append(f"<li{cls}>{e(_finding_text(f))}</li>")
    for f in expected:
        if _finding_key(f) not in have:
            items.append(f"<li class='missing'>{e(_finding_text(f))}</li>")
    text = "<ul>" + "".join(items) + "</ul>" if items else "<span class='muted'>none</span>"
    differences = check.get("differences") or []
    if differences:
        text += "".join(f"<div class='diff'>{e(d)}</div>" for d in differences)
    return text


def studies_html(runs: Sequence[Run]) -> str:
    names: list[str] = []
    for _, results in runs:
        for name in [*results.studies, *(s for r in results.backends.values() for s in r.outputs)]:
            if name not in names:
                names.append(name)
    if not names:
        return "<p class='muted'>no reports</p>"
    parts: list[str] = []
    for study in sorted(names):
        parts.append(f"<h3>{e(study)}</h3>")
        info = next((r.studies[study] for _, r in runs if study in r.studies), {})
        if info.get("indication"):
            parts.append(f"<p class='muted'>indication: {e(info['indication'])}</p>")
        for view, value in dict(info.get("images") or {}).items():
            src = _image_src(str(value))
            if src is None:
                parts.append(f"<p class='muted'>{e(view)} image not available: {e(value)}</p>")
            else:
                parts.append(
                    f"<figure><img alt='{e(study)} {e(view)}' src='{src}'>"
                    f"<figcaption>{e(view)}</figcaption></figure>"
                )
        parts.append("<table><tr><th>backend</th><th>report</th><th>findings asserted</th></tr>")
        for machine, results in runs:
            reference = results.backends.get(REFERENCE_BACKEND)
            ref_found = None
            if reference is not None:
                ref_found = (
                    reference.equivalence.get(study, {}).get("clinical_findings", {}).get("found")
                )
            ordered = sorted(results.backends.values(), key=lambda r: r.label != REFERENCE_BACKEND)
            for result in ordered:
                if study not in result.outputs and study not in result.equivalence:
                    continue
                check = result.equivalence.get(study, {}).get("clinical_findings")
                failing = [c for c, d in result.equivalence.get(study, {}).items() if not d["ok"]]
                cls = " class='fail'" if failing else ""
                note = (
                    f"<div class='state-fail'>failed: {e(', '.join(failing))}</div>"
                    if failing
                    else ""
                )
                parts.append(
                    f"<tr{cls}><td>{e(_who(machine, result.label))}{note}</td>"
                    f"<td class='report'>{e(result.outputs.get(study, '-'))}</td>"
                    f"<td>{findings_html(check, ref_found)}</td></tr>"
                )
        parts.append("</table>")
    return "".join(parts)


def render_runs(runs: Sequence[Run]) -> str:
    speedups = [
        (_who(m, r.label), s)
        for m, results in runs
        for r in results.backends.values()
        if (s := r.speedup_vs_eager()) is not None
    ]
    stages = [
        (_who(m, r.label), stage_medians(r.stages))
        for m, results in runs
        for r in results.backends.values()
    ]
    notices = [n for _, results in runs for n in results.notices]
    title, _, _ = model.headline(runs)
    body = [
        header_html(runs),
        table_html(runs),
        "<h2>Speedup vs eager fp32 (interleaved control)</h2>",
        speedup_svg(speedups),
        "<h2>Latency rounds and the gate's evidence</h2>",
        "<p class='muted'>Dots: every timed round of the backend and of its in-run control; "
        "bars: medians. The gate judges the change of the backend's ratio to its control "
        "against the baseline's: point = estimate, band = interval, dashed = decision bounds."
        "</p>",
        latency_html(runs),
        "<h2>Stages (median seconds per generation)</h2>",
        stages_svg(stages),
        *(
            ["<h2>Roofline (each stage against this machine's ceiling)</h2>", roofline_html(runs)]
            if model.has_roofline(runs)
            else []
        ),
        "<h2>Memory</h2>",
        memory_html(runs),
        throughput_html(runs),
        "<h2>Studies: reports and findings</h2>",
        "<p class='muted'>Highlighted: a finding eager fp32 does not assert; struck through: "
        "one it asserts that this report misses.</p>",
        studies_html(runs),
    ]
    if notices:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notices) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def render(results: RunResults) -> str:
    """The HTML report of one run."""
    return render_runs([("", results)])


def write_html(path: Path, runs: Sequence[Run]) -> None:
    write_text_atomic(path, render_runs(runs))
