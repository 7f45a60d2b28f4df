"""``--cxr-bmf``: the run in Bencher Metric Format, for history on bencher.dev (``bencher run
--adapter json --file PATH``).

``{benchmark: {measure: {"value", "lower_value", "upper_value"}}}``. One benchmark per backend
(``cxrperf/<machine-class>/<model>/<backend>``: each machine class is its own history, as
its baselines are; ``cxrperf/<model>/<backend>`` where the run names no class) and one per
stage of it (``.../vision``, ``.../prefill``,
``.../decode-per-token``), each with Bencher's built-in ``latency`` measure in nanoseconds: the
median, with the fastest and slowest round as the bounds. The backend's benchmark also carries
``speedup-vs-eager`` (the interleaved control's median over the backend's), ``prepare-time``
(seconds) and, where memory was sampled, ``memory-generate-peak`` / ``memory-rss-peak`` /
``memory-prepare-peak`` / ``memory-available-drop`` (MiB). Bencher creates a measure that does
not exist yet on first upload.

Where the backend's throughput test ran, its own benchmark
``.../<backend>/throughput-c<concurrency>-n<worklist>`` (a different concurrency or worklist is a
different history, as a machine class is) carries Bencher's built-in ``throughput`` measure in
its own unit, operations (here: studies) per second: the median round, with the slowest and the
fastest round as the bounds; ``speedup-vs-sequential`` (over the same worklist one study at a
time); ``latency-p95`` (seconds: a study's p95 latency under that load) and, where the run was
given a cost per hour, ``cost-per-1000`` (reports, in that cost's currency). Apart from the
backend's benchmark because its ``latency`` is one study alone on an idle machine: under one
name, Bencher would plot the two latencies side by side as if measured alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..results import RunResults
from .model import ThroughputRow, throughput_rows

NS = 1e9
STAGES = (("vision", "vision_s"), ("prefill", "prefill_s"), ("decode-per-token", "per_token_s"))
MEMORY = (
    ("memory-generate-peak", "generate_peak_mib"),
    ("memory-rss-peak", "rss_peak_mib"),
    ("memory-prepare-peak", "prepare_peak_mib"),
    ("memory-available-drop", "available_drop_mib"),
)


def _spread(values: list[float], scale: float = 1.0) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    middle = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return {
        "value": middle * scale,
        "lower_value": ordered[0] * scale,
        "upper_value": ordered[-1] * scale,
    }


def build(results: RunResults, prefix: str = "cxrperf") -> dict[str, dict[str, Any]]:
    model = str(results.settings.get("model") or results.model.get("name") or "model")
    machine_class = (results.machine.get("machine_class") or {}).get("key")
    if machine_class:
        prefix = f"{prefix}/{machine_class}"
    out: dict[str, dict[str, Any]] = {}
    for label, result in results.backends.items():
        name = f"{prefix}/{model}/{label}"
        measures: dict[str, Any] = {}
        if result.samples_s:
            measures["latency"] = _spread(result.samples_s, NS)
            speedup = result.speedup_vs_eager()
            if speedup is not None:
                measures["speedup-vs-eager"] = {"value": speedup}
            for stage, key in STAGES:
                values = [s.as_dict()[key] for s in result.stages]
                if values:
                    out[f"{name}/{stage}"] = {"latency": _spread(values, NS)}
        if result.prepare_seconds is not None:
            measures["prepare-time"] = {"value": float(result.prepare_seconds)}
        if result.memory is not None:
            figures = result.memory.to_dict()
            for measure, key in MEMORY:
                if figures.get(key) is not None:
                    measures[measure] = {"value": float(figures[key])}
        if measures:
            out[name] = measures
    for row in throughput_rows([("", results)]):
        measures = throughput_measures(row)
        if measures:
            out[f"{prefix}/{model}/{row.label}/{throughput_benchmark(row)}"] = measures
    return dict(sorted(out.items()))


def throughput_benchmark(row: ThroughputRow) -> str:
    """The throughput benchmark's last part: ``throughput-c4-n32``."""
    return f"throughput-c{row.concurrency}-n{row.worklist}"


def throughput_measures(row: ThroughputRow) -> dict[str, Any]:
    """The throughput test's measures (see the module's docstring); studies/hour become
    studies/second, the unit of Bencher's built-in ``throughput``."""
    measures: dict[str, Any] = {}
    if row.studies_per_hour is not None:
        measures["throughput"] = {"value": row.studies_per_hour / 3600}
        if row.studies_per_hour_range is not None:
            low, high = row.studies_per_hour_range
            measures["throughput"] |= {"lower_value": low / 3600, "upper_value": high / 3600}
    if row.speedup_vs_sequential is not None:
        measures["speedup-vs-sequential"] = {"value": float(row.speedup_vs_sequential)}
    if row.latency_p95_s is not None:
        measures["latency-p95"] = {"value": float(row.latency_p95_s)}
    if row.cost_per_1000 is not None:
        measures["cost-per-1000"] = {"value": float(row.cost_per_1000)}
    return measures


def write_bmf(path: Path, results: RunResults) -> None:
    write_json_atomic(path, build(results))
