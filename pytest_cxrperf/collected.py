"""Which backends a run's collected tests use, fixed once at the end of collection.

The latency campaign times every backend with a latency test together, the throughput campaign
every backend with a throughput test; backends are prepared in the order they were asked for.
Pure: the plugin hands in (backend spec, markers) per collected test, so this is tested without
pytest's items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .settings import BackendSpec

LATENCY_MARKER = "cxr_latency"
THROUGHPUT_MARKER = "cxr_throughput"


@dataclass(frozen=True)
class Collected:
    """Backend specs, each in the order the run asked for them (``--cxr-backend``)."""

    latency: tuple[BackendSpec, ...] = ()  # timed together in the latency campaign
    throughput: tuple[BackendSpec, ...] = ()  # their worklists timed together
    used: tuple[BackendSpec, ...] = ()  # every backend a collected test uses


def collected_backends(
    tests: Iterable[tuple[BackendSpec, frozenset[str]]], asked: Sequence[BackendSpec]
) -> Collected:
    """``tests``: per collected test that is not skipped, its backend and its markers' names.
    A spec the run did not ask for (a test's own parametrization) goes after the asked ones."""
    latency: list[BackendSpec] = []
    throughput: list[BackendSpec] = []
    used: list[BackendSpec] = []
    for spec, markers in tests:
        for found, wanted in ((used, True), (latency, LATENCY_MARKER in markers),
                              (throughput, THROUGHPUT_MARKER in markers)):  # fmt: skip
            if wanted and spec not in found:
                found.append(spec)

    def in_asked_order(specs: list[BackendSpec]) -> tuple[BackendSpec, ...]:
        return tuple(sorted(specs, key=lambda s: asked.index(s) if s in asked else len(asked)))

    return Collected(in_asked_order(latency), in_asked_order(throughput), in_asked_order(used))
