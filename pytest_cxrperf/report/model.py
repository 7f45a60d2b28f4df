"""What every writer shows, derived once from :class:`~pytest_cxrperf.results.RunResults`: the
state of each backend (fail / warn / ok), the headline phrases ("latency REGRESSED +30% ..."),
and the table's cells. The terminal, Markdown and HTML writers and ``cxrperf report merge`` read
these, so a backend reads the same everywhere. No torch, no pytest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..backends.registry import REFERENCE_BACKEND
from ..backends.timings import stage_medians
from ..gate.decision import IMPROVED, MISSING, OK, UPDATED, Verdict
from ..results import BackendResult, RooflineBasis, RunResults
from ..roofline import STAGES

FAIL, WARN, PASS = "fail", "warn", "ok"

# one run of one machine: (machine key, results); a single run has the key ""
Run = tuple[str, RunResults]


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict_is_plain(verdict: Verdict | None) -> bool:
    """Nothing to say: no verdict, a pass without notes, or a baseline written."""
    if verdict is None or verdict.status == UPDATED:
        return True
    return verdict.status == OK and not verdict.notes


def state(result: BackendResult) -> str:
    """``fail``: a gate or equivalence failed; ``warn``: a verdict the user should see (no
    baseline, not yet known, improved); ``ok`` otherwise."""
    if result.failed:
        return FAIL
    for verdict in (result.gate, result.memory_gate):
        if verdict is not None and (verdict.warning or verdict.status == IMPROVED):
            return WARN
    return PASS


def _verdict_phrase(what: str, verdict: Verdict) -> str:
    text = f"{what} {verdict.short()}"
    r = verdict.relative
    if r is not None and verdict.status not in (OK, UPDATED):
        interval = f", interval [{r.interval[0]:.3f}, {r.interval[1]:.3f}]" if r.interval else ""
        unit = f" x {r.control} time" if r.control else ""
        text += (
            f" (ratio {r.ratio:.3f}{interval}; baseline {r.baseline_median:.4g} -> "
            f"{r.current_median:.4g}{unit}; threshold {verdict.threshold:.0%})"
        )
    elif verdict.notes and verdict.status not in (OK, UPDATED):
        text += f" ({verdict.notes[0]})"
    return text


def problems(result: BackendResult) -> list[str]:
    """Why a backend failed, and by how much: one phrase per failing gate or check."""
    found: list[str] = []
    if result.gate is not None and result.gate.failed:
        found.append(_verdict_phrase("latency", result.gate))
    if result.memory_gate is not None and result.memory_gate.failed:
        found.append(_verdict_phrase("memory", result.memory_gate))
    failures = result.equivalence_failures()
    if failures:
        studies = sorted({f.split(": ", 1)[0] for f in failures})
        checks = sorted({f.split(": ", 1)[1] for f in failures})
        found.append(
            f"equivalence FAILED: {len(failures)} check(s) on {len(studies)} of "
            f"{len(result.equivalence)} studies ({', '.join(checks)}; {', '.join(studies)})"
        )
    return found


def missing_baseline(verdict: Verdict | None) -> bool:
    """No baseline, and only a warning: listed once for all backends rather than per backend."""
    return verdict is not None and verdict.status == MISSING and not verdict.failed


def warnings(result: BackendResult) -> list[str]:
    """What a passing backend's verdicts want the user to see (a missing baseline aside)."""
    return [
        _verdict_phrase(what, verdict)
        for what, verdict in (("latency", result.gate), ("memory", result.memory_gate))
        if verdict is not None
        and not verdict.failed
        and not missing_baseline(verdict)
        and (verdict.warning or verdict.status == IMPROVED)
    ]


def equivalence_cell(result: BackendResult) -> str:
    failures = result.equivalence_failures()
    if not result.equivalence:
        return "not run"
    if failures:
        return f"FAIL ({len(failures)})"
    return f"ok ({len(result.equivalence)} studies)"


def shown(result: BackendResult) -> bool:
    """Rows worth a line: measured, checked, or judged."""
    return bool(
        result.samples_s
        or result.equivalence
        or result.gate is not None
        or result.memory is not None
        or result.memory_gate is not None
    )


@dataclass(frozen=True)
class Row:
    """One backend of one run, as the tables show it (strings, "-" where absent)."""

    machine: str
    label: str
    state: str
    cells: dict[str, str]


COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "precision"),
    ("rounds", "rounds"),
    ("mean", "mean s"),
    ("std", "std s"),
    ("median", "median s"),
    ("speedup", "speedup"),
    ("vision", "vision s"),
    ("prefill", "prefill s"),
    ("decode", "decode ms/tok"),
    ("roofline", "roofline v/p/d"),
    ("prepare", "prepare s"),
    ("generate_mib", "gen peak MiB"),
    ("rss_mib", "RSS peak MiB"),
    ("latency", "latency gate"),
    ("memory", "memory gate"),
    ("equivalence", "equivalence"),
)
MEMORY_COLUMNS = ("generate_mib", "rss_mib", "memory")
ROOFLINE_TITLE = dict(COLUMNS)["roofline"]


def percent(fraction: float) -> str:
    """41 for 0.41; one decimal under 10 % (a small model on a big machine reads 0.3 %)."""
    value = fraction * 100
    return f"{value:.0f}" if value >= 9.95 else f"{value:.1f}"


def roofline_cell(result: BackendResult, basis: RooflineBasis | None) -> str:
    """``41/63/12 %``: vision, prefill and decode as percentages of their ceilings (``-`` for a
    stage not measured); ``no ceilings`` where the run had none (the line under the table says
    what to do); ``-`` for a backend that was not timed."""
    if result.roofline:
        parts = [
            percent(result.roofline[s]["fraction"]) if s in result.roofline else "-" for s in STAGES
        ]
        return "/".join(parts) + " %"
    if result.stages and basis is not None:
        return "no ceilings" if basis.ceilings is None else "n/a"
    return "-"


def roofline_line(results: RunResults) -> str | None:
    """What the roofline column's percentages are of, or why the column is empty."""
    basis = results.roofline
    if basis is None:
        return None
    if basis.ceilings is None:
        return f"{ROOFLINE_TITLE}: {basis.note}"
    c = basis.ceilings
    int8 = "-" if c.get("int8_gops") is None else f"{c['int8_gops']:.0f}"
    bf16 = "emulated" if c.get("bf16_gflops") is None else f"{c['bf16_gflops']:.0f}"
    paths = c.get("paths") or {}
    on = f" ({paths['int8']})" if paths.get("int8") else ""
    text = (
        f"{ROOFLINE_TITLE}: each stage's % of this machine's ceiling (vision, prefill: FLOP/s vs "
        "the matmul peak of the backend's compute precision; decode: bytes read per token vs "
        f"memory bandwidth); ceilings ({basis.source}, {c.get('threads')} threads): "
        f"fp32 {c['fp32_gflops']:.0f}, bf16 {bf16} GFLOP/s, int8 {int8} GOP/s{on}, "
        f"{c['bandwidth_gbs']:.1f} GB/s"
    )
    return f"{text}; {basis.note}" if basis.note else text


def roofline_details(result: BackendResult) -> list[str]:
    """One phrase per stage: achieved against ceiling (``vision 41 of 183 GFLOP/s fp32 matmul,
    22 %``)."""
    return [
        f"{stage} {d['achieved']:.3g} of {d['ceiling']:.3g} {d['unit']} {d['ceiling_name']}, "
        f"{percent(d['fraction'])} %"
        for stage in STAGES
        if (d := result.roofline.get(stage))
    ]


def has_roofline(runs: Sequence[Run]) -> bool:
    """Some run looked for ceilings (it timed a backend and --cxr-ceilings was not off)."""
    return any(results.roofline is not None for _, results in runs)


def column_keys(runs: Sequence[Run], drop_empty_memory: bool = False) -> list[str]:
    """The columns to show: the roofline where some run looked for ceilings; the memory columns
    always, or (``drop_empty_memory``: the terminal) where something was sampled or judged."""
    keys = [k for k, _ in COLUMNS]
    if not has_roofline(runs):
        keys.remove("roofline")
    if drop_empty_memory and not has_memory(runs):
        keys = [k for k in keys if k not in MEMORY_COLUMNS]
    return keys


def row(machine: str, result: BackendResult, basis: RooflineBasis | None = None) -> Row:
    summary = result.summary
    medians = stage_medians(result.stages)
    speedup = result.speedup_vs_eager()
    memory = result.memory
    cells = {
        "precision": result.precision or "-",
        "rounds": str(summary.n) if summary else "0",
        "mean": fmt(summary.mean if summary else None),
        "std": fmt(summary.stdev if summary else None),
        "median": fmt(summary.median if summary else None),
        "speedup": f"{speedup:.2f}x" if speedup else "-",
        "vision": fmt(medians.get("vision_s")),
        "prefill": fmt(medians.get("prefill_s")),
        "decode": fmt(medians["per_token_s"] * 1000, 1) if "per_token_s" in medians else "-",
        "roofline": roofline_cell(result, basis),
        "prepare": fmt(result.prepare_seconds, 1),
        "generate_mib": fmt(memory.generate_peak_mib if memory else None, 1),
        "rss_mib": fmt(memory.rss_peak_mib if memory else None, 1),
        "latency": result.gate.short() if result.gate is not None else "-",
        "memory": result.memory_gate.short() if result.memory_gate is not None else "-",
        "equivalence": equivalence_cell(result),
    }
    return Row(machine, result.label, state(result), cells)


def rows(runs: Sequence[Run]) -> list[Row]:
    return [
        row(machine, result, results.roofline)
        for machine, results in runs
        for result in results.backends.values()
        if shown(result)
    ]


def has_memory(runs: Sequence[Run]) -> bool:
    return any(
        r.memory is not None or r.memory_gate is not None
        for _, results in runs
        for r in results.backends.values()
    )


def name(machine: str, label: str) -> str:
    """A backend's name in a headline: ``label`` or ``label @ machine``."""
    return f"{label} @ {machine}" if machine else label


def headline(runs: Sequence[Run]) -> tuple[str, list[str], list[str]]:
    """The verdict in one line, then one phrase per failing and per warning backend."""
    failing: list[str] = []
    warning: list[str] = []
    missing: list[str] = []
    total = 0
    for machine, results in runs:
        for result in results.backends.values():
            if not shown(result):
                continue
            total += 1
            who = name(machine, result.label)
            failing += [f"{who}: {p}" for p in problems(result)]
            warning += [f"{who}: {w}" for w in warnings(result)]
            missing += [
                f"{who} ({what})"
                for what, v in (("latency", result.gate), ("memory", result.memory_gate))
                if missing_baseline(v)
            ]
    if missing:
        warning.append(
            f"no baseline: {', '.join(missing)}: record one with --cxr-update-baselines "
            "(or `cxrperf baselines refresh`)"
        )
    failed = sum(1 for _, results in runs for _ in results.failed)
    machines = len(runs)
    where = f" on {machines} machines" if machines > 1 else ""
    if failed:
        title = f"cxrperf: FAILED - {failed} of {total} backend(s){where} failed a gate or check"
    elif total:
        title = f"cxrperf: passed - {total} backend(s){where}, no regression, outputs equivalent"
    else:
        title = "cxrperf: nothing was measured or checked"
    unavailable = [
        f"{name(machine, label)}: not run ({reason})"
        for machine, results in runs
        for label, reason in results.unavailable.items()
    ]
    return title, failing, warning + unavailable


@dataclass(frozen=True)
class Fastest:
    """The fastest backend of one run that passed equivalence: what to deploy on that class."""

    machine: str  # the run's key ("" for a single run)
    machine_class: str  # the class it was measured on
    label: str
    speedup: float  # interleaved eager fp32 median / its median
    studies: int  # studies its equivalence passed on
    runner_up: tuple[str, float] | None  # the next equivalent backend and its speedup

    def line(self) -> str:
        where = f" on machine class {self.machine_class}" if self.machine_class else ""
        text = (
            f"fastest equivalent backend{where}: {name(self.machine, self.label)}, "
            f"{self.speedup:.2f}x eager fp32 (equivalence ok on {self.studies} "
            f"{'study' if self.studies == 1 else 'studies'}"
        )
        if self.runner_up is not None:
            text += f"; next: {self.runner_up[0]} {self.runner_up[1]:.2f}x"
        return text + ")"


def fastest_equivalent(runs: Sequence[Run]) -> list[Fastest]:
    """Per run, the fastest backend whose equivalence ran and passed on every study and whose
    gates did not fail, by its speedup over the interleaved eager fp32 control. Eager fp32
    itself and deliberately slowed variants (``eager+slow=1.5``) are no candidates; a run with
    none (equivalence not run, or nothing faster than the reference timed) has no entry."""
    found: list[Fastest] = []
    for machine, results in runs:
        ranked = sorted(
            (
                (speedup, result)
                for result in results.backends.values()
                if result.label != REFERENCE_BACKEND
                and "+" not in result.label
                and not result.failed
                and result.equivalence
                and not result.equivalence_failures()
                and (speedup := result.speedup_vs_eager()) is not None
            ),
            key=lambda pair: -pair[0],
        )
        if not ranked:
            continue
        (speedup, best), runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
        found.append(
            Fastest(
                machine,
                str(results.machine.get("fingerprint") or ""),
                best.label,
                speedup,
                len(best.equivalence),
                (runner_up[1].label, runner_up[0]) if runner_up else None,
            )
        )
    return found


def any_failed(runs: Sequence[Run]) -> bool:
    return any(results.failed for _, results in runs)


def context_line(results: RunResults) -> str:
    """Model, tokens, threads and machine of a run, in one line."""
    settings, machine = results.settings, results.machine
    parts = [
        f"model {settings.get('model', results.model.get('name', '-'))}",
        f"{settings.get('max_new_tokens', '-')} new tokens",
        f"{settings.get('threads', '-')} threads",
    ]
    if machine.get("cpu"):
        parts.append(f"{machine.get('cpu')} ({machine.get('cores', '?')} cores)")
    if machine.get("fingerprint"):
        parts.append(f"machine class {machine['fingerprint']}")
    return ", ".join(parts)
