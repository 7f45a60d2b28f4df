"""Throughput of a worklist: studies per hour, tokens per second, per-study latency percentiles
under load, and cost per 1,000 reports. Pure: no model, no torch; the figures come from a
finished worklist (:meth:`Throughput.from_run`).

A worklist is the run's studies repeated to ``size``, each repetition in its own shuffled order
(a worklist is not sorted by prompt length; padding costs what it costs in production). It runs
through :func:`.backends.batching.run_batched` with ``concurrency`` studies in flight (static
batches, continuous batching, or one at a time: the backend's mode). A study's **latency under
load** is its service time while ``concurrency`` studies share the machine, from its admission
to its end (time queued behind earlier studies is the worklist's, not the study's, and is left
out).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.batching import BatchRun

KNEE_SHARE = 0.9  # the knee: the lowest concurrency reaching this share of the best throughput


def worklist(studies: int, size: int, seed: int = 0) -> list[int]:
    """Indices into the run's ``studies``, ``size`` of them: every study once per repetition, each
    repetition shuffled with its own seed (reproducible: the same seed, the same order)."""
    if studies < 1:
        raise ValueError("a worklist needs at least one study")
    if size < 1:
        raise ValueError("a worklist needs at least one entry")
    order: list[int] = []
    repetition = 0
    while len(order) < size:
        block = list(range(studies))
        random.Random(seed * 1_000_003 + repetition).shuffle(block)
        order += block
        repetition += 1
    return order[:size]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics
    (numpy's default), so p95 of 20 values is not simply the 19th."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Throughput:
    """One backend's worklist at one concurrency."""

    backend: str
    concurrency: int
    studies: int  # reports generated
    seconds: float  # wall clock of the whole worklist
    tokens: int  # generated tokens, all reports
    latencies_s: tuple[float, ...] = field(default=(), repr=False)  # per study, under load
    batched: bool = True  # False: the backend has no batched path, studies ran one at a time

    @classmethod
    def from_run(cls, backend: str, run: BatchRun) -> Throughput:
        """The figures of one worklist run (:func:`.backends.batching.run_batched`)."""
        return cls(
            backend,
            run.concurrency,
            len(run.outputs),
            run.seconds,
            run.tokens,
            tuple(run.latencies_s),
            run.batched,
        )

    @property
    def studies_per_hour(self) -> float:
        return self.studies / self.seconds * 3600 if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def latency_percentile(self, q: float) -> float:
        return percentile(self.latencies_s, q)

    def cost_per_1000(self, cost_per_hour: float) -> float:
        """What 1,000 reports cost on a machine billed ``cost_per_hour`` (any currency)."""
        if cost_per_hour <= 0:
            raise ValueError("the cost per hour must be a positive number")
        return cost_per_hour * 1000 / self.studies_per_hour

    def to_dict(self, cost_per_hour: float | None = None) -> dict[str, Any]:
        data = asdict(self)
        data["latencies_s"] = list(self.latencies_s)
        data |= {
            "studies_per_hour": self.studies_per_hour,
            "tokens_per_s": self.tokens_per_s,
            "latency_p50_s": self.latency_percentile(50),
            "latency_p95_s": self.latency_percentile(95),
            "latency_p99_s": self.latency_percentile(99),
        }
        if cost_per_hour is not None:
            data["cost_per_1000"] = self.cost_per_1000(cost_per_hour)
        return data


def knee(curve: Sequence[Throughput], share: float = KNEE_SHARE) -> Throughput:
    """The lowest concurrency whose throughput reaches ``share`` of the curve's best: beyond it,
    more concurrency buys little throughput and costs latency."""
    if not curve:
        raise ValueError("an empty curve")
    best = max(point.studies_per_hour for point in curve)
    return min(
        (p for p in curve if p.studies_per_hour >= share * best), key=lambda p: p.concurrency
    )


def curve_lines(curve: Sequence[Throughput], cost_per_hour: float | None = None) -> list[str]:
    """The capacity-planning table: one row per concurrency, the knee marked."""
    if not curve:
        return []
    bend = knee(curve)
    header = ["concurrency", "studies/h", "tokens/s", "p50 s", "p95 s", "p99 s"]
    if cost_per_hour is not None:
        header.append("cost/1000")
    rows = []
    for point in sorted(curve, key=lambda p: p.concurrency):
        row = [
            f"{point.concurrency}{' (knee)' if point is bend else ''}",
            f"{point.studies_per_hour:.0f}",
            f"{point.tokens_per_s:.1f}",
            f"{point.latency_percentile(50):.3f}",
            f"{point.latency_percentile(95):.3f}",
            f"{point.latency_percentile(99):.3f}",
        ]
        if cost_per_hour is not None:
            row.append(f"{point.cost_per_1000(cost_per_hour):.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, ["-" * w for w in widths], *rows]
    ]


def _clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_line(done: int, total: int, elapsed_s: float, doing: str, width: int = 20) -> str:
    """A sweep's progress bar: ``[########............] 4/10  1m 05s, ~1m 37s left  eager: ...``.
    The time left is the mean of the steps done so far times the steps to go (levels differ in
    length, so it is a guide, and none is guessed before the first step ends)."""
    if total < 1 or not 0 <= done <= total:
        raise ValueError(f"progress {done}/{total}")
    filled = round(width * done / total)
    left = f", ~{_clock_text(elapsed_s / done * (total - done))} left" if 0 < done < total else ""
    bar = "#" * filled + "." * (width - filled)
    return f"[{bar}] {done}/{total}  {_clock_text(elapsed_s)}{left}  {doing}".rstrip()


def parse_concurrency(text: str, studies: int) -> list[int]:
    """``"1,2,4,8"`` as a sorted list of distinct levels; each must be 1..``studies`` (a batch
    larger than the worklist would never fill)."""
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--concurrency {text!r}: a comma-separated list of integers") from None
    if not levels:
        raise ValueError("--concurrency: give at least one level, e.g. 1,2,4")
    bad = [level for level in levels if not 1 <= level <= studies]
    if bad:
        raise ValueError(
            f"--concurrency {','.join(map(str, bad))}: each level must be between 1 and the "
            f"worklist's {studies} studies"
        )
    return levels


def parse_cost(text: str | None) -> float | None:
    """``--cost-per-hour``: a positive finite number, or None when not given."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--cost-per-hour {text!r}: not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--cost-per-hour {text!r}: must be a positive number")
    return value


THROUGHPUT_CHECKS = ("batched_vs_single", "batched_vs_reference", "clinical_findings")


@dataclass
class ThroughputFigures:
    """One backend's throughput test in a run (the suite's ``cxr_throughput`` tests): a worklist
    of ``worklist`` studies with ``concurrency`` in flight, timed in interleaved rounds against
    the in-run eager fp32 control, the same worklist one study at a time for comparison, the
    batched reports' equivalence and the gate's verdict. Plain data: the results, the writers
    and a merge read it without a model."""

    concurrency: int
    worklist: int  # studies in the worklist
    mode: str  # how the studies shared the machine (:func:`.backends.batching.batch_mode`)
    samples_s: list[float] = field(default_factory=list)  # worklist s at concurrency, per round
    control_samples_s: list[float] = field(default_factory=list)  # eager fp32, same rounds
    sequential_samples_s: list[float] = field(default_factory=list)  # concurrency 1, same rounds
    tokens: int = 0  # generated tokens in one worklist (fixed length: the same every round)
    latencies_s: list[float] = field(default_factory=list)  # per study under load, median round
    sequential_latencies_s: list[float] = field(default_factory=list)  # concurrency 1
    peak_memory_mib: float | None = None  # RSS growth over one worklist at concurrency
    # study -> check (:data:`THROUGHPUT_CHECKS`) -> {"ok": bool, "message": str}
    equivalence: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    gate: Any = None  # the throughput gate's :class:`~.gate.decision.Verdict`
    cost_per_hour: float | None = None  # what the machine costs per hour (any currency)

    # ---- derived ---------------------------------------------------------------------------
    @staticmethod
    def _median(values: Sequence[float]) -> float | None:
        return percentile(values, 50) if values else None

    @property
    def median_s(self) -> float | None:
        return self._median(self.samples_s)

    @property
    def studies_per_hour(self) -> float | None:
        median = self.median_s
        return self.worklist / median * 3600 if median else None

    @property
    def sequential_studies_per_hour(self) -> float | None:
        median = self._median(self.sequential_samples_s)
        return self.worklist / median * 3600 if median else None

    @property
    def speedup_vs_sequential(self) -> float | None:
        """Throughput at ``concurrency`` over throughput one study at a time (same rounds)."""
        batched, sequential = self.studies_per_hour, self.sequential_studies_per_hour
        return batched / sequential if batched and sequential else None

    @property
    def tokens_per_s(self) -> float | None:
        median = self.median_s
        return self.tokens / median if median else None

    def latency_percentile(self, q: float) -> float | None:
        return percentile(self.latencies_s, q) if self.latencies_s else None

    @property
    def cost_per_1000(self) -> float | None:
        rate = self.studies_per_hour
        if self.cost_per_hour is None or not rate:
            return None
        return self.cost_per_hour * 1000 / rate

    def equivalence_failures(self) -> list[str]:
        return [
            f"{study}: batched {check}"
            for study, checks in sorted(self.equivalence.items())
            for check, data in sorted(checks.items())
            if not data.get("ok")
        ]

    @property
    def failed(self) -> bool:
        return bool(self.equivalence_failures()) or bool(self.gate is not None and self.gate.failed)

    # ---- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "worklist": self.worklist,
            "mode": self.mode,
            "samples_s": list(self.samples_s),
            "control_samples_s": list(self.control_samples_s),
            "sequential_samples_s": list(self.sequential_samples_s),
            "tokens": self.tokens,
            "latencies_s": list(self.latencies_s),
            "sequential_latencies_s": list(self.sequential_latencies_s),
            "peak_memory_mib": self.peak_memory_mib,
            "equivalence": self.equivalence,
            "gate": self.gate.as_dict() if self.gate is not None else None,
            "cost_per_hour": self.cost_per_hour,
            # derived, for readers (recomputed, never read back)
            "median_s": self.median_s,
            "studies_per_hour": self.studies_per_hour,
            "sequential_studies_per_hour": self.sequential_studies_per_hour,
            "speedup_vs_sequential": self.speedup_vs_sequential,
            "tokens_per_s": self.tokens_per_s,
            "latency_p50_s": self.latency_percentile(50),
            "latency_p95_s": self.latency_percentile(95),
            "latency_p99_s": self.latency_percentile(99),
            "cost_per_1000": self.cost_per_1000,
        }

    @classmethod
    def from_dict(cls, label: str, data: dict[str, Any]) -> ThroughputFigures:
        from .gate.decision import Verdict

        def floats(key: str) -> list[float]:
            return [float(v) for v in data.get(key) or ()]

        gate = data.get("gate")
        peak, cost = data.get("peak_memory_mib"), data.get("cost_per_hour")
        return cls(
            concurrency=int(data["concurrency"]),
            worklist=int(data["worklist"]),
            mode=str(data.get("mode") or ""),
            samples_s=floats("samples_s"),
            control_samples_s=floats("control_samples_s"),
            sequential_samples_s=floats("sequential_samples_s"),
            tokens=int(data.get("tokens") or 0),
            latencies_s=floats("latencies_s"),
            sequential_latencies_s=floats("sequential_latencies_s"),
            peak_memory_mib=None if peak is None else float(peak),
            equivalence={
                study: {check: dict(v) for check, v in checks.items()}
                for study, checks in (data.get("equivalence") or {}).items()
            },
            gate=Verdict.from_dict(label, gate) if gate else None,
            cost_per_hour=None if cost is None else float(cost),
        )


def in_flight_bytes(
    decoder: dict[str, Any], sequence_tokens: int, concurrency: int, bytes_per_value: int = 4
) -> int:
    """An upper estimate of what ``concurrency`` sequences of ``sequence_tokens`` hold at once in
    a transformers decoder (``decoder``: its config dict): the KV cache of every layer, the widest
    activations of a prompt pass (hidden states and the MLP's intermediate) and one layer's
    attention scores (eager attention materialises ``heads x L x L``), in fp32. Weights are not
    counted: the latency run holds them already."""
    layers = int(decoder["num_hidden_layers"])
    heads = int(decoder["num_attention_heads"])
    kv_heads = int(decoder.get("num_key_value_heads") or heads)
    hidden = int(decoder["hidden_size"])
    head_dim = int(decoder.get("head_dim") or hidden // heads)
    ffn = int(decoder.get("intermediate_size") or 4 * hidden)
    tokens = sequence_tokens
    kv = 2 * layers * kv_heads * head_dim * tokens
    activations = tokens * (4 * hidden + 2 * ffn)
    scores = heads * tokens * tokens
    return concurrency * (kv + activations + scores) * bytes_per_value


def worklist_fit_problem(
    decoder: dict[str, Any],
    sequence_tokens: int,
    concurrency: int,
    available_bytes: int,
    option: str = "--cxr-concurrency",
    share: float = 0.8,
) -> str | None:
    """Why ``concurrency`` sequences would not fit in ``share`` of the memory available now
    (None: they fit)."""
    need = in_flight_bytes(decoder, sequence_tokens, concurrency)
    if need <= share * available_bytes:
        return None
    per = need / concurrency
    fits = int(share * available_bytes // per)
    gib = 1024**3
    return (
        f"{option}={concurrency}: {concurrency} studies in flight of up to {sequence_tokens} "
        f"tokens need about {need / gib:.1f} GiB (KV cache, activations, attention scores; "
        f"{per / gib:.2f} GiB each) but {available_bytes / gib:.1f} GiB is available; lower it "
        f"to {max(fits, 0)} or less" + ("" if fits >= 1 else " (not even one fits: free memory)")
    )
