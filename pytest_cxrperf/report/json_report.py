"""``--cxr-json``: the run's results as JSON, written atomically (:meth:`RunResults.to_dict`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..results import SCHEMA_VERSION, RunResults

__all__ = ["SCHEMA_VERSION", "build_report", "settings_block", "write_report"]


def settings_block(settings: Any) -> dict[str, Any]:
    """The run's settings as the report records them."""
    return {
        "model": settings.model,
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
        "session_noise": settings.session_noise,
        "missing_baseline": settings.missing_baseline,
        "save_missing": str(settings.save_missing_dir) if settings.save_missing_dir else None,
        "unknown": settings.unknown,
        "time_budget_s": settings.time_budget_s,
    }


def build_report(results: RunResults) -> dict[str, Any]:
    """The results, plus what they recommend (derived, never read back: ``fastest_equivalent``,
    the fastest backend that passed equivalence, or null)."""
    from .model import fastest_equivalent

    data = results.to_dict()
    fastest = fastest_equivalent([("", results)])
    data["fastest_equivalent"] = (
        {
            "backend": fastest[0].label,
            "speedup_vs_eager": fastest[0].speedup,
            "machine_class": fastest[0].machine_class,
            "equivalent_on_studies": fastest[0].studies,
            "runner_up": (
                {"backend": fastest[0].runner_up[0], "speedup_vs_eager": fastest[0].runner_up[1]}
                if fastest[0].runner_up
                else None
            ),
        }
        if fastest
        else None
    )
    return data


def write_report(path: Path, results: RunResults) -> None:
    write_json_atomic(path, build_report(results))
