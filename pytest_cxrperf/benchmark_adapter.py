"""Hand the campaign's samples to pytest-benchmark, so ``--benchmark-json`` and
``--benchmark-compare`` see our latency tests.

The campaign times every backend itself (interleaved, sequential), so pytest-benchmark must not
time anything: its ``Metadata`` stats are filled with the measured rounds instead. That uses the
fixture's ``_make_stats``, a private method stable across pytest-benchmark 3-5; where it is missing
or the fixture is disabled (pytest-xdist), the samples are simply not handed over.
"""

from __future__ import annotations

from typing import Any


def record_samples(benchmark: Any, result: Any) -> bool:
    """Record ``result.samples_s`` (seconds) and stage medians on the ``benchmark`` fixture."""
    from .backends.timings import stage_medians

    if benchmark is None or getattr(benchmark, "disabled", True):
        return False
    make_stats = getattr(benchmark, "_make_stats", None)
    if make_stats is None:
        return False
    benchmark._mode = "pytest-cxrperf campaign"  # the fixture's "was it used" flag
    stats = make_stats(1)
    for seconds in result.samples_s:
        stats.update(seconds)
    benchmark.extra_info.update(
        {
            "backend": result.label,
            "precision": result.precision,
            "control": result.control,
            "control_samples_s": list(result.control_samples_s),
            **{f"median_{k}": v for k, v in stage_medians(result.stages).items()},
        }
    )
    return True
