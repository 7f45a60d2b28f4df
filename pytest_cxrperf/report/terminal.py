"""The end-of-run summary: the table first (one row per backend, laid out like the published
comparison), then the gate and equivalence detail of the backends that failed or warned only; with
``-v`` the detail of every backend."""

from __future__ import annotations

import os
from pathlib import Path

from ..gate.decision import IMPROVED, UPDATED, Verdict
from ..results import BackendResult, RunResults
from . import model
from .table import format_table


def findings_line(label: str, result: BackendResult) -> str | None:
    """Do a backend's reports assert the reference's (and the truth's) findings?"""
    parts = []
    for check, against in (
        ("clinical_findings", "eager fp32"),
        ("ground_truth_findings", "ground truth"),
    ):
        outcomes = [c[check]["ok"] for c in result.equivalence.values() if check in c]
        if outcomes:
            parts.append(f"{sum(outcomes)}/{len(outcomes)} studies agree with {against}")
    return f"findings: {label}: " + ", ".join(parts) if parts else None


def table_lines(results: RunResults) -> list[str]:
    """The table; the memory columns only where some backend's memory was sampled or judged,
    the roofline column where the run looked for ceilings."""
    run = [("", results)]
    keys = model.column_keys(run, drop_empty_memory=True)
    titles = dict(model.COLUMNS)
    header = ["backend", *(titles[k] for k in keys)]
    rows = [[r.label, *(r.cells[k] for k in keys)] for r in model.rows(run)]
    return format_table(header, rows) if rows else []


def summary_lines(results: RunResults, verbose: int = 0) -> list[str]:
    """The terminal summary. ``verbose`` > 0 (``-v``): the detail of every backend, not only of
    those that failed or warned."""
    lines: list[str] = []
    table = table_lines(results)
    settings = results.settings
    if table:
        lines += table
        lines.append(
            f"model {settings.get('model', '-')}, {settings.get('max_new_tokens')} new tokens "
            f"(fixed), {settings.get('threads')} threads, {settings.get('warmup')} warm-up "
            "round(s); speedup = interleaved eager fp32 median / backend median"
        )
        machine = results.machine.get("fingerprint")
        if machine:
            lines.append(f"machine class {machine}")
        lines += [fastest.line() for fastest in model.fastest_equivalent([("", results)])]
        campaign = results.campaign
        if campaign is not None:
            budget = settings.get("time_budget_s")
            cap = f" or {budget:g} s" if isinstance(budget, (int, float)) else ""
            lines.append(
                f"latency: {campaign.rounds} interleaved rounds in {campaign.seconds:.0f} s "
                f"(stopped: {campaign.stopped}; batches of {campaign.batch_rounds}, cap "
                f"{campaign.max_rounds} rounds{cap}); "
                "eager fp32 is judged against the machine probe, every other backend against "
                "eager fp32"
            )
        roofline = model.roofline_line(results)
        if roofline:
            lines.append(roofline)
    lines += throughput_lines(results)
    for label, reason in results.unavailable.items():
        lines.append(f"not run: {label}: {reason}")
    for what, gate in (("latency", _latency_gate), ("throughput", model.throughput_gate)):
        missing = [n for n, r in results.backends.items() if model.missing_baseline(gate(r))]
        if missing:
            lines.append(
                f"no {what} baseline: {', '.join(missing)}: record with --cxr-update-baselines "
                "(or `cxrperf baselines refresh`)"
            )
    quiet = []
    for label, result in results.backends.items():
        if not (_noteworthy(result) or verbose > 0):
            if model.shown(result):
                quiet.append(label)
            continue
        lines += backend_detail(label, result, verbose)
    if quiet and any(_noteworthy(r) for r in results.backends.values()):
        lines.append(f"passed: {', '.join(quiet)} (details with -v)")
    lines += updated_lines(results)
    for notice in results.notices:
        lines.append(f"note: {notice}")
    return lines


def _latency_gate(result: BackendResult) -> Verdict | None:
    return result.gate


def throughput_lines(results: RunResults) -> list[str]:
    """The throughput section, only where some backend's throughput test ran: what it ran
    under, a compact table (the cost column only with a cost) and what its columns mean."""
    run = [("", results)]
    rows = model.throughput_rows(run)
    if not rows:
        return []
    keys = model.throughput_column_keys(rows, model.TERMINAL_THROUGHPUT_KEYS)
    titles = {key: short for key, _, short in model.THROUGHPUT_COLUMNS}
    header = ["backend", *(titles[k] for k in keys)]
    table = [[r.label, *(r.cells[k] for k in keys)] for r in rows]
    return [
        str(model.throughput_line(run)),
        *format_table(header, table),
        "C = studies in flight; x seq = over one study at a time; p95 s = latency under load",
    ]


def _noteworthy(result: BackendResult) -> bool:
    """Failed, or warned of more than a missing baseline."""
    if result.failed:
        return True
    return any(
        v is not None and (v.warning or v.status == IMPROVED) and not model.missing_baseline(v)
        for _, v in model.gates(result)
    )


def backend_detail(label: str, result: BackendResult, verbose: int = 0) -> list[str]:
    """A backend's gate verdicts (latency, memory, throughput), equivalence failures and the
    throughput test's batched ones (by study; each check's message with ``-v``) and findings
    agreement."""
    lines: list[str] = []
    for what, verdict in model.gates(result):
        what = f"{what} gate"
        if verdict is None or verdict.status == UPDATED:
            continue
        if (model.verdict_is_plain(verdict) or model.missing_baseline(verdict)) and not verbose:
            continue
        prefix = f"{what} FAILED" if verdict.failed else what
        first, *rest = verdict.message.splitlines()
        lines.append(f"{prefix}: {first}")
        lines += rest
    for study, checks in sorted(result.equivalence.items()):
        failed = sorted(check for check, data in checks.items() if not data["ok"])
        if not failed:
            continue
        lines.append(f"equivalence FAILED: {label}: {study}: {', '.join(failed)}")
        if verbose:
            lines += [f"  {check}: {checks[check].get('message', '')}" for check in failed]
    batched = result.throughput.equivalence if result.throughput is not None else {}
    for study, checks in sorted(batched.items()):
        failed = sorted(check for check, data in checks.items() if not data.get("ok"))
        if not failed:
            continue
        lines.append(f"batched equivalence FAILED: {label}: {study}: {', '.join(failed)}")
        if verbose:
            lines += [f"  {check}: {checks[check].get('message', '')}" for check in failed]
    findings = findings_line(label, result)
    if findings:
        lines.append(findings)
    return lines


def updated_lines(results: RunResults) -> list[str]:
    """The before -> after table of the baselines this run wrote (latency, and throughput as
    ``backend (throughput)``: its median is the worklist's seconds)."""
    verdicts = [
        (suffix, v)
        for r in results.backends.values()
        for suffix, v in (("", r.gate), (" (throughput)", model.throughput_gate(r)))
        if v is not None and v.status == UPDATED
    ]
    lines: list[str] = []
    if verdicts:
        root = Path(str(results.settings.get("baseline_dir", "")))
        lines.append(f"baselines written under {root} (before -> after):")
        rows = []
        for suffix, verdict in verdicts:
            row = _change_row(verdict, root)
            rows.append([row[0] + suffix, *row[1:]])
        lines += format_table(["backend", "median s", "change", "change vs control", "file"], rows)
    return lines


def _change_row(verdict: Verdict, root: Path) -> list[str]:
    """One row of the before -> after table."""
    path = verdict.baseline_path or "-"
    if path.startswith(f"{root}{os.sep}"):
        path = path[len(str(root)) + 1 :]
    a, r = verdict.absolute, verdict.relative
    if r is None:
        return [verdict.backend, "new", "-", "-", path]
    median = f"{a.baseline_median:.4f} -> {a.current_median:.4f}" if a is not None else "-"
    absolute = f"{a.change:+.1%}" if a is not None else "-"
    return [verdict.backend, median, absolute, f"{r.change:+.1%} ({r.status})", path]
