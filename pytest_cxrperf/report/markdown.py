"""``--cxr-markdown``: one Markdown file a CI step can post as a pull-request comment.

The headline first (which backends regressed or failed a check, and by how much), then the table,
the throughput table where a backend's throughput test ran, then each backend's detail folded in
``<details>``. Where ``GITHUB_STEP_SUMMARY`` is set the same
text is appended to the job summary, kept under GitHub's 1 MiB limit: the details are dropped
first (the text says so), the table last. All text from the run is HTML-escaped (``|`` too), so a
report that contains Markdown or HTML cannot break the page.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_text_atomic
from ..results import BackendResult, RunResults
from . import model
from .model import Run

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts per step summary
ICONS = {model.FAIL: ":x:", model.WARN: ":warning:", model.PASS: ":white_check_mark:"}
TRUNCATED = (
    "_Details left out: the full text is over GitHub's 1 MiB step summary limit; see the "
    "--cxr-markdown / --cxr-html report._"
)


def cell(text: object) -> str:
    """A table cell: escaped, on one line, no column separator."""
    return html.escape(str(text)).replace("|", "&#124;").replace("\n", " ")


def pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def headline_lines(runs: Sequence[Run]) -> list[str]:
    title, failing, warning = model.headline(runs)
    icon = ICONS[model.FAIL if failing or model.any_failed(runs) else model.PASS]
    lines = [f"## {icon} {cell(title)}", ""]
    lines += [f"**{cell(f.line())}**" for f in model.fastest_equivalent(runs)]
    lines += [""] if lines[-1] else []
    if failing:
        lines += ["**Failed**", ""] + [f"- {cell(p)}" for p in failing] + [""]
    if warning:
        lines += ["**Warnings**", ""] + [f"- {cell(w)}" for w in warning] + [""]
    return lines


def table_lines(runs: Sequence[Run]) -> list[str]:
    rows = model.rows(runs)
    if not rows:
        return []
    several = len(runs) > 1
    keys = model.column_keys(runs)
    titles = dict(model.COLUMNS)
    header = (["machine"] if several else []) + ["backend", "status"]
    header += [titles[key] for key in keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = ([row.machine] if several else []) + [row.label]
        status = f"{ICONS[row.state]} {row.state}"
        values = [cell(c) for c in cells] + [status]
        values += [cell(row.cells[key]) for key in keys]
        lines.append("| " + " | ".join(values) + " |")
    lines.append("")
    for machine, results in runs:
        where = f"**{cell(machine)}**: " if several else ""
        lines.append(f"<sub>{where}{cell(model.context_line(results))}</sub>")
        lines.append("")
        roofline = model.roofline_line(results)
        if roofline:
            lines += [f"<sub>{where}{cell(roofline)}</sub>", ""]
    return lines


def throughput_lines(runs: Sequence[Run]) -> list[str]:
    """The throughput section: what it ran under, then the table (the cost column only with a
    cost); nothing when no backend's throughput test ran."""
    rows = model.throughput_rows(runs)
    if not rows:
        return []
    several = len(runs) > 1
    keys = model.throughput_column_keys(rows)
    titles = {key: title for key, title, _ in model.THROUGHPUT_COLUMNS}
    header = (["machine"] if several else []) + ["backend", "status"]
    header += [titles[key] for key in keys]
    lines = ["### Throughput", "", cell(model.throughput_line(runs)), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = ([row.machine] if several else []) + [row.label]
        values = [cell(c) for c in cells] + [f"{ICONS[row.state]} {row.state}"]
        values += [cell(row.cells[key]) for key in keys]
        lines.append("| " + " | ".join(values) + " |")
    return [*lines, "", f"<sub>{cell(model.throughput_note(rows))}</sub>", ""]


def backend_details(machine: str, result: BackendResult) -> list[str]:
    """One backend's verdicts, failed checks, memory and reports, folded."""
    who = model.name(machine, result.label)
    body: list[str] = []
    for _, verdict in model.gates(result):
        if verdict is not None:
            body.append(verdict.message)
    if result.memory is not None:
        figures = ", ".join(
            f"{key} {value:.1f}"
            for key, value in result.memory.to_dict().items()
            if isinstance(value, (int, float)) and value
        )
        body.append(f"memory: {figures or 'not sampled'}")
    roofline = model.roofline_details(result)
    if roofline:
        body.append(f"roofline: {'; '.join(roofline)}")
    for study, checks in sorted(result.equivalence.items()):
        for check, data in sorted(checks.items()):
            if not data.get("ok", True):
                body.append(f"{study}: {check}: {data.get('message', '')}")
    batched = result.throughput.equivalence if result.throughput is not None else {}
    for study, checks in sorted(batched.items()):
        for check, data in sorted(checks.items()):
            if not data.get("ok"):
                body.append(f"{study}: batched {check}: {data.get('message', '')}")
    lines = [f"<details><summary>{ICONS[model.state(result)]} {cell(who)}</summary>", ""]
    if body:
        lines += [pre("\n".join(body)), ""]
    for study, text in sorted(result.outputs.items()):
        lines += [f"**{cell(study)}**", "", pre(text), ""]
    lines += ["</details>", ""]
    return lines


def details_lines(runs: Sequence[Run]) -> list[str]:
    order = {model.FAIL: 0, model.WARN: 1, model.PASS: 2}
    entries = [
        (order[model.state(result)], machine, result)
        for machine, results in runs
        for result in results.backends.values()
        if model.shown(result)
    ]
    lines: list[str] = []
    for _, machine, result in sorted(entries, key=lambda e: e[0]):
        lines += backend_details(machine, result)
    notices = [n for _, results in runs for n in results.notices]
    if notices:
        lines += ["<details><summary>Notes</summary>", ""]
        lines += [f"- {cell(n)}" for n in notices] + ["", "</details>", ""]
    return lines


def render_runs(runs: Sequence[Run], details: bool = True) -> str:
    lines = headline_lines(runs) + table_lines(runs) + throughput_lines(runs)
    lines += details_lines(runs) if details else [TRUNCATED, ""]
    return "\n".join(lines)


def render(results: RunResults, details: bool = True) -> str:
    """The Markdown report of one run."""
    return render_runs([("", results)], details)


def fit(runs: Sequence[Run], limit: int) -> str:
    """The report in at most ``limit`` bytes (UTF-8): details dropped first, then cut."""
    text = render_runs(runs)
    if len(text.encode()) <= limit:
        return text
    text = render_runs(runs, details=False)
    if len(text.encode()) <= limit:
        return text
    note = "\n\n_Cut at GitHub's step summary limit._\n"
    room = max(0, limit - len(note.encode()))
    return text.encode()[:room].decode("utf-8", errors="ignore") + note


def write_markdown(path: Path, runs: Sequence[Run]) -> None:
    write_text_atomic(path, render_runs(runs))


def append_step_summary(runs: Sequence[Run], environ: dict[str, str] | None = None) -> Path | None:
    """Append the report to ``$GITHUB_STEP_SUMMARY`` (if set) within what is left of its limit;
    returns the file written, if any."""
    target = (os.environ if environ is None else environ).get(STEP_SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    used = path.stat().st_size if path.is_file() else 0
    room = STEP_SUMMARY_LIMIT - used - 1
    if room < len(TRUNCATED) * 2:  # the summary is full already: add nothing rather than break it
        return None
    text = fit(runs, room)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return path
