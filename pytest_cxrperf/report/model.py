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
from ..throughput import ThroughputFigures

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


def throughput_gate(result: BackendResult) -> Verdict | None:
    """The throughput gate's verdict, where the throughput test ran and was judged."""
    return result.throughput.gate if result.throughput is not None else None


def gates(result: BackendResult) -> tuple[tuple[str, Verdict | None], ...]:
    """Every gate of a backend, by what it judges (latency, memory, throughput)."""
    return (
        ("latency", result.gate),
        ("memory", result.memory_gate),
        ("throughput", throughput_gate(result)),
    )


def _warns(verdict: Verdict | None) -> bool:
    return verdict is not None and (verdict.warning or verdict.status == IMPROVED)


def state(result: BackendResult) -> str:
    """``fail``: a gate or equivalence failed (the throughput test's included); ``warn``: a
    verdict the user should see (no baseline, not yet known, improved); ``ok`` otherwise."""
    if result.failed:
        return FAIL
    return WARN if any(_warns(verdict) for _, verdict in gates(result)) else PASS


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
        found.append("equivalence FAILED: " + _failures_phrase(failures, len(result.equivalence)))
    tp = result.throughput
    if tp is not None:
        if tp.gate is not None and tp.gate.failed:
            found.append(_verdict_phrase("throughput", tp.gate))
        batched = batched_failures(tp)
        if batched:
            found.append(
                "batched equivalence FAILED: " + _failures_phrase(batched, len(tp.equivalence))
            )
    return found


def _failures_phrase(failures: list[str], checked: int) -> str:
    """``2 check(s) on 1 of 3 studies (checks; studies)`` of ``study: check`` failures."""
    studies = sorted({f.split(": ", 1)[0] for f in failures})
    checks = sorted({f.split(": ", 1)[1] for f in failures})
    return (
        f"{len(failures)} check(s) on {len(studies)} of {checked} studies "
        f"({', '.join(checks)}; {', '.join(studies)})"
    )


def missing_baseline(verdict: Verdict | None) -> bool:
    """No baseline, and only a warning: listed once for all backends rather than per backend."""
    return verdict is not None and verdict.status == MISSING and not verdict.failed


def warnings(result: BackendResult) -> list[str]:
    """What a passing backend's verdicts want the user to see (a missing baseline aside)."""
    return [
        _verdict_phrase(what, verdict)
        for what, verdict in gates(result)
        if verdict is not None
        and not verdict.failed
        and not missing_baseline(verdict)
        and _warns(verdict)
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
        or result.throughput is not None
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
            missing += [f"{who} ({what})" for what, v in gates(result) if missing_baseline(v)]
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
    gates did not fail (the throughput test's gate and batched equivalence included:
    :attr:`BackendResult.failed`), by its speedup over the interleaved eager fp32 control. Eager
    fp32 itself and deliberately slowed variants (``eager+slow=1.5``) are no candidates; a run with
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


# ---- throughput ---------------------------------------------------------------------------
def batched_failures(figures: ThroughputFigures) -> list[str]:
    """``study: check`` for every batched report that failed a check (:data:`THROUGHPUT_CHECKS`)."""
    return [
        f"{study}: {check}"
        for study, checks in sorted(figures.equivalence.items())
        for check, data in sorted(checks.items())
        if not data.get("ok")
    ]


@dataclass(frozen=True)
class ThroughputRow:
    """One backend's throughput test as every writer shows it: the figures (None where absent)
    for the charts and BMF, :attr:`cells` (strings, "-" where absent) for the tables."""

    machine: str
    label: str
    precision: str
    state: str  # of the throughput test alone: fail / warn / ok
    concurrency: int
    worklist: int
    mode: str
    studies_per_hour: float | None
    studies_per_hour_range: tuple[float, float] | None  # the slowest and the fastest round
    sequential_studies_per_hour: float | None
    speedup_vs_sequential: float | None
    tokens_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    peak_memory_mib: float | None
    cost_per_hour: float | None
    cost_per_1000: float | None
    verdict: str  # the gate's short status; "-" without a gate
    verdict_message: str  # the gate's full message; "" without a gate
    verdict_failed: bool
    equivalence_studies: int  # studies whose batched reports were checked
    equivalence_failures: tuple[str, ...]  # "study: check"
    equivalence_messages: tuple[str, ...] = ()  # each failure's check message, in that order

    @property
    def failed(self) -> bool:
        return self.state == FAIL

    @property
    def equivalence(self) -> str:
        """``ok (3 studies)``, ``FAIL (2)`` (checks), or ``not run``."""
        if not self.equivalence_studies:
            return "not run"
        if self.equivalence_failures:
            return f"FAIL ({len(self.equivalence_failures)})"
        n = self.equivalence_studies
        return f"ok ({n} {'study' if n == 1 else 'studies'})"

    @property
    def cells(self) -> dict[str, str]:
        speedup = self.speedup_vs_sequential
        return {
            "precision": self.precision or "-",
            "concurrency": str(self.concurrency),
            "worklist": str(self.worklist),
            "mode": self.mode or "-",
            "studies_per_hour": fmt(self.studies_per_hour, 0),
            "sequential": fmt(self.sequential_studies_per_hour, 0),
            "speedup": f"{speedup:.2f}x" if speedup else "-",
            "tokens_per_s": fmt(self.tokens_per_s, 1),
            "p50": fmt(self.latency_p50_s),
            "p95": fmt(self.latency_p95_s),
            "p99": fmt(self.latency_p99_s),
            "peak_mib": fmt(self.peak_memory_mib, 1),
            "cost": fmt(self.cost_per_1000),
            "verdict": self.verdict,
            "equivalence": self.equivalence,
        }


# key, title (Markdown, HTML), short title (the terminal's compact table)
THROUGHPUT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("precision", "precision", "precision"),
    ("concurrency", "C", "C"),
    ("mode", "mode", "mode"),
    ("studies_per_hour", "studies/h", "studies/h"),
    ("sequential", "sequential studies/h", "seq studies/h"),
    ("speedup", "x sequential", "x seq"),
    ("tokens_per_s", "tokens/s", "tokens/s"),
    ("p50", "p50 s", "p50 s"),
    ("p95", "p95 s", "p95 s"),
    ("p99", "p99 s", "p99 s"),
    ("peak_mib", "peak MiB", "peak MiB"),
    ("cost", "cost/1000", "cost/1000"),
    ("verdict", "throughput gate", "gate"),
    ("equivalence", "batched equivalence", "batched eq"),
)
TERMINAL_THROUGHPUT_KEYS = (
    "concurrency",
    "studies_per_hour",
    "speedup",
    "p95",
    "tokens_per_s",
    "cost",
    "verdict",
    "equivalence",
)


def throughput_note(rows: Sequence[ThroughputRow]) -> str:
    """What the throughput table's columns mean (the cost's only where the table has it)."""
    note = (
        "C = studies in flight; x sequential = studies/h at C over the same worklist one study at "
        "a time (same rounds); p50/p95/p99 = a study's latency under load"
    )
    if any(r.cost_per_1000 is not None for r in rows):
        note += "; cost/1000 = what 1,000 reports cost at the machine's cost per hour"
    return note


def _spread(figures: ThroughputFigures) -> tuple[float, float] | None:
    rates = [figures.worklist / s * 3600 for s in figures.samples_s if s > 0]
    return (min(rates), max(rates)) if rates else None


def throughput_row(machine: str, result: BackendResult) -> ThroughputRow:
    tp = result.throughput
    if tp is None:
        raise ValueError(f"{result.label}: the throughput test did not run")
    gate = tp.gate
    status = FAIL if tp.failed else WARN if _warns(gate) else PASS
    return ThroughputRow(
        machine=machine,
        label=result.label,
        precision=result.precision,
        state=status,
        concurrency=tp.concurrency,
        worklist=tp.worklist,
        mode=tp.mode,
        studies_per_hour=tp.studies_per_hour,
        studies_per_hour_range=_spread(tp),
        sequential_studies_per_hour=tp.sequential_studies_per_hour,
        speedup_vs_sequential=tp.speedup_vs_sequential,
        tokens_per_s=tp.tokens_per_s,
        latency_p50_s=tp.latency_percentile(50),
        latency_p95_s=tp.latency_percentile(95),
        latency_p99_s=tp.latency_percentile(99),
        peak_memory_mib=tp.peak_memory_mib,
        cost_per_hour=tp.cost_per_hour,
        cost_per_1000=tp.cost_per_1000,
        verdict=gate.short() if gate is not None else "-",
        verdict_message=gate.message if gate is not None else "",
        verdict_failed=bool(gate is not None and gate.failed),
        equivalence_studies=len(tp.equivalence),
        equivalence_failures=tuple(batched_failures(tp)),
        equivalence_messages=tuple(
            str(data.get("message", ""))
            for _, checks in sorted(tp.equivalence.items())
            for _, data in sorted(checks.items())
            if not data.get("ok")
        ),
    )


def throughput_rows(runs: Sequence[Run]) -> list[ThroughputRow]:
    """One row per backend whose throughput test ran, in the order of :func:`rows` (runs as
    given, backends as the run recorded them); empty when no backend has throughput figures."""
    return [
        throughput_row(machine, result)
        for machine, results in runs
        for result in results.backends.values()
        if result.throughput is not None
    ]


def throughput_column_keys(rows: Sequence[ThroughputRow], keys: Sequence[str] = ()) -> list[str]:
    """``keys`` (every column where empty) less the cost column where no row has a cost."""
    chosen = list(keys) or [k for k, _, _ in THROUGHPUT_COLUMNS]
    if not any(r.cost_per_1000 is not None for r in rows):
        chosen.remove("cost")
    return chosen


def _distinct(values: Sequence[object]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if str(value) not in seen:
            seen.append(str(value))
    return seen


def throughput_line(runs: Sequence[Run]) -> str | None:
    """What the throughput table's figures were measured under, in one line: the worklist, the
    concurrency, the cost per hour (or that none was given) and the machine class."""
    rows = throughput_rows(runs)
    if not rows:
        return None
    worklists = _distinct([r.worklist for r in rows])
    levels = _distinct([r.concurrency for r in rows])
    costs = _distinct([f"{r.cost_per_hour:g}" for r in rows if r.cost_per_hour is not None])
    classes = _distinct(
        [
            results.machine.get("fingerprint") or "-"
            for machine, results in runs
            if any(r.throughput is not None for r in results.backends.values())
        ]
    )
    per_backend = " (per backend)"
    parts = [
        f"worklist of {' / '.join(worklists)} studies{per_backend if len(worklists) > 1 else ''}",
        f"concurrency {' / '.join(levels)}{per_backend if len(levels) > 1 else ''}",
        f"cost per hour {' / '.join(costs)}" if costs else "no cost per hour given",
        f"machine class {', '.join(classes)}",
    ]
    return "throughput: " + ", ".join(parts)


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
