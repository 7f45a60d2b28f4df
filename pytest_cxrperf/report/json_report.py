"""``--cxr-json``: the run's results as JSON, written atomically."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..gate.stats import Summary
from ..machine import machine_info
from ..session import CxrSession, stage_medians
from .terminal import speedup_vs_eager

SCHEMA_VERSION = 1


def build_report(session: CxrSession) -> dict[str, Any]:
    settings = session.settings
    backends: dict[str, Any] = {}
    for label, result in session.results.items():
        entry: dict[str, Any] = {"precision": result.precision}
        if result.samples_s:
            summary = Summary.of(result.samples_s)
            entry.update(
                rounds=summary.n,
                samples_s=result.samples_s,
                mean_s=summary.mean,
                stdev_s=summary.stdev,
                median_s=summary.median,
                control_samples_s=result.control_samples_s,
                control=result.control,
                speedup_vs_eager=speedup_vs_eager(result),
                stage_medians_s=stage_medians(result.stages),
            )
        entry["prepare_s"] = result.prepare_seconds
        entry["prepare_details"] = result.prepare_details
        entry["equivalence"] = result.equivalence
        entry["equivalence_ok"] = (
            (not result.equivalence_failures()) if result.equivalence else None
        )
        entry["outputs"] = result.outputs
        entry["latency_gate"] = result.gate.as_dict() if result.gate is not None else None
        backends[label] = entry
    reference = session._reference
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(settings.threads),
        "model": reference.describe() if reference is not None else {"name": settings.model},
        "settings": {
            "backends": settings.backend_request,
            "rounds": settings.rounds,
            "warmup": settings.warmup,
            "threads": settings.threads,
            "max_new_tokens": settings.max_new_tokens,
            "baseline_dir": str(settings.baseline_dir),
            "update_baselines": settings.update_baselines,
            "threshold": settings.threshold,
            "thresholds": dict(settings.thresholds),
            "alpha": settings.alpha,
            "missing_baseline": settings.missing_baseline,
            "unknown": settings.unknown,
            "time_budget_s": settings.time_budget_s,
            "batch_rounds": session.latency_plan.batch_rounds if session.latency_plan else None,
        },
        "latency_campaign": (
            {
                "rounds": session.campaign.rounds,
                "seconds": session.campaign.seconds,
                "stopped": session.campaign.stopped,
                "looks": session.campaign.looks,
                "probe_repeats": session.probe.repeats if session.probe else None,
            }
            if session.campaign is not None
            else None
        ),
        "backends": backends,
        "unavailable": {r.label: r.availability.reason for r in session.unavailable},
        "notices": session.notices,
    }
