"""Throughput of a worklist: studies per hour, tokens per second, per-study latency percentiles
under load, and cost per 1,000 reports. Pure: the generation is passed in, the clock too.

A worklist is the run's studies repeated to ``size``, each repetition in its own shuffled order
(a worklist is not sorted by prompt length; padding costs what it costs in production). It is
processed in batches of ``concurrency`` studies, one batch after the other (static batching:
every study of a batch is admitted together and the batch ends with its longest report). A
study's **latency under load** is the time from its batch's start to the end of its batch: the
service time a study sees when ``concurrency`` studies share the machine (time queued behind
earlier batches is the worklist's, not the study's, and is left out).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any, TypeVar

T = TypeVar("T")
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


def run_worklist(
    backend: str,
    items: Sequence[T],
    order: Sequence[int],
    concurrency: int,
    generate: Callable[[list[T]], list[int]],
    *,
    batched: bool = True,
    clock: Callable[[], float] = perf_counter,
) -> Throughput:
    """Process ``items`` in ``order`` in batches of ``concurrency``; ``generate(batch)`` returns
    each study's generated token count. Without a batched path (``batched=False``) the batch's
    studies run one after the other inside ``generate``, and each study's latency is still its
    batch's span (the queue it shares), so the figures stay comparable."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not order:
        raise ValueError("an empty worklist")
    latencies: list[float] = []
    tokens = 0
    start = clock()
    for first in range(0, len(order), concurrency):
        batch = [items[i] for i in order[first : first + concurrency]]
        began = clock()
        counts = generate(batch)
        span = clock() - began
        if len(counts) != len(batch):
            raise ValueError(f"generate returned {len(counts)} counts for {len(batch)} studies")
        tokens += sum(counts)
        latencies += [span] * len(batch)
    return Throughput(
        backend, concurrency, len(order), clock() - start, tokens, tuple(latencies), batched
    )


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
