"""The end-of-run table, laid out like the published comparison: one row per backend."""

from __future__ import annotations

import os
from pathlib import Path

from ..backends.timings import stage_medians
from ..gate.decision import OK, UPDATED, Verdict
from ..results import BackendResult, RunResults
from .table import format_table


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def speedup_vs_eager(result: BackendResult) -> float | None:
    return result.speedup_vs_eager()


def findings_lines(results: RunResults) -> list[str]:
    """One line per backend: do its reports assert the reference's (and the truth's) findings?"""
    lines: list[str] = []
    for label, result in results.backends.items():
        parts = []
        for check, against in (
            ("clinical_findings", "eager fp32"),
            ("ground_truth_findings", "ground truth"),
        ):
            outcomes = [c[check]["ok"] for c in result.equivalence.values() if check in c]
            if outcomes:
                parts.append(f"{sum(outcomes)}/{len(outcomes)} studies agree with {against}")
        if parts:
            lines.append(f"findings: {label}: " + ", ".join(parts))
    return lines


def summary_lines(results: RunResults) -> list[str]:
    header = [
        "backend",
        "precision",
        "rounds",
        "mean s",
        "std s",
        "median s",
        "speedup",
        "vision s",
        "prefill s",
        "decode ms/tok",
        "prepare s",
        "latency gate",
        "equivalence",
    ]
    rows: list[list[str]] = []
    for label, result in results.backends.items():
        if not result.samples_s and not result.equivalence:
            continue
        summary = result.summary
        medians = stage_medians(result.stages)
        speedup = result.speedup_vs_eager()
        failures = result.equivalence_failures()
        if not result.equivalence:
            verdict = "not run"
        elif failures:
            verdict = f"FAIL ({len(failures)})"
        else:
            verdict = f"ok ({len(result.equivalence)} studies)"
        rows.append(
            [
                label,
                result.precision,
                str(summary.n) if summary else "0",
                _fmt(summary.mean if summary else None),
                _fmt(summary.stdev if summary else None),
                _fmt(summary.median if summary else None),
                f"{speedup:.2f}x" if speedup else "-",
                _fmt(medians.get("vision_s")),
                _fmt(medians.get("prefill_s")),
                _fmt(medians["per_token_s"] * 1000, 1) if "per_token_s" in medians else "-",
                _fmt(result.prepare_seconds, 1),
                result.gate.short() if result.gate is not None else "-",
                verdict,
            ]
        )
    lines: list[str] = []
    settings = results.settings
    if rows:
        lines.append(
            f"model {settings.get('model', '-')}, {settings.get('max_new_tokens')} new tokens "
            f"(fixed), {settings.get('threads')} threads, {settings.get('warmup')} warm-up "
            "round(s); speedup = interleaved eager fp32 median / backend median"
        )
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
        lines += format_table(header, rows)
    for label, reason in results.unavailable.items():
        lines.append(f"not run: {label}: {reason}")
    lines += findings_lines(results)
    for label, result in results.backends.items():
        for failure in result.equivalence_failures():
            lines.append(f"equivalence FAILED: {label}: {failure}")
    lines += gate_lines(results)
    for notice in results.notices:
        lines.append(f"note: {notice}")
    return lines


def gate_lines(results: RunResults) -> list[str]:
    """Details of every latency verdict that is not a plain pass, and the before -> after table of
    the baselines this run wrote."""
    verdicts = [r.gate for r in results.backends.values() if r.gate is not None]
    lines: list[str] = []
    for verdict in verdicts:
        if verdict.status == UPDATED or (verdict.status == OK and not verdict.notes):
            continue
        prefix = "latency gate FAILED" if verdict.failed else "latency gate"
        first, *rest = verdict.message.splitlines()
        lines.append(f"{prefix}: {first}")
        lines += rest
    updated = [v for v in verdicts if v.status == UPDATED]
    if updated:
        root = Path(str(results.settings.get("baseline_dir", "")))
        lines.append(f"baselines written under {root} (before -> after):")
        lines += format_table(
            ["backend", "median s", "change", "change vs control", "file"],
            [_change_row(v, root) for v in updated],
        )
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
