"""Everything the run needs, checked once in ``pytest_configure`` before any backend is prepared.

Bad input must never go green and never show a traceback: each problem is one
:class:`~pytest_cxrperf.errors.CxrPerfError` naming the value, the file and what to do, which the
plugin turns into a usage error (exit 4). Exit 1 stays reserved for a real gate or equivalence
failure. The checks are pure functions of the settings; :func:`validate_run` runs them all and
returns the warnings (not errors) the user should see.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.precision import PRECISIONS, TOLERANCE_RANGES
from .backends.registry import backend_names
from .errors import SettingsError

# text tokens of a prompt beyond its images (INDICATION, TECHNIQUE, COMPARISON and the template),
# an upper bound for the worklist memory estimate
PROMPT_TEXT_TOKENS = 256

if TYPE_CHECKING:
    from .session import ResolvedBackend
    from .settings import Settings


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_empty_options(options: Mapping[str, object]) -> None:
    """``--cxr-backend=`` given explicitly empty must not silently mean "the default" (an empty
    ini value is the same as none: the default applies)."""
    for name, value in sorted(options.items()):
        if name.startswith("cxr_") and isinstance(value, str) and not value.strip():
            raise SettingsError(
                f"{_flag(name)} is given but empty; give it a value, or leave the option out "
                "to use the ini value or the default"
            )


def _range_text(low: float, high: float | None) -> str:
    return f">= {low:g}" if high is None else f"between {low:g} and {high:g}"


def check_tolerances(tolerances: Mapping[str, float], backends: Iterable[str]) -> None:
    """``KEY.METRIC = VALUE``: KEY a precision or a backend, METRIC known, VALUE in range."""
    known_keys = [*PRECISIONS, *backends]
    for key, value in sorted(tolerances.items()):
        prefix, _, metric = key.rpartition(".")
        if metric not in TOLERANCE_RANGES:
            raise SettingsError(
                f"cxr_tolerances: unknown metric in {key!r}; metrics: {', '.join(TOLERANCE_RANGES)}"
            )
        if prefix not in known_keys:
            raise SettingsError(
                f"cxr_tolerances: {key!r} names neither a precision ({', '.join(PRECISIONS)}) nor "
                f"a backend ({', '.join(k for k in known_keys if k not in PRECISIONS)}); fix the "
                "ini line"
            )
        low, high = TOLERANCE_RANGES[metric]
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise SettingsError(
                f"cxr_tolerances: {key} = {value:g} is out of range; {metric} must be "
                f"{_range_text(low, high)}"
            )


def check_thresholds(thresholds: Mapping[str, float], backends: Iterable[str]) -> None:
    """ini ``cxr_thresholds`` keys must be backend names (a misspelling would be ignored)."""
    known = list(backends)
    for key in sorted(thresholds):
        if key in known:
            continue
        hint = (
            f"; a synthetic slowdown uses its base backend's threshold, write "
            f"'{key.partition('+')[0]} = ...'"
            if "+" in key
            else ""
        )
        raise SettingsError(
            f"cxr_thresholds: {key!r} is not a backend; known backends: {', '.join(known)}{hint}"
        )


def cores_available() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_warning(threads: int) -> str | None:
    cores = cores_available()
    if threads <= cores:
        return None
    return (
        f"--cxr-threads={threads} exceeds the {cores} core(s) available to this process; the "
        "threads will fight over the cores and the timings will be noisy. Use at most "
        f"--cxr-threads={cores}"
    )


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_creatable_dir(path: Path, what: str, hint: str) -> None:
    """``path`` is (or can become) a directory this process may write into."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise SettingsError(f"{what} {path} {where}, not a directory; {hint}")
    if not _writable(existing):
        raise SettingsError(f"{what} {path} cannot be written ({existing} is read-only); {hint}")


def check_output_file(path: Path, what: str, example: str = "results.json") -> None:
    """A file to be written at the end of the run: refuse now what would fail then."""
    if path.is_dir():
        raise SettingsError(
            f"{what} {path} is a directory; give a file path such as {path / example}"
        )
    check_creatable_dir(path.parent, f"{what} {path}: its folder", "choose another path")


def check_baseline_store(path: Path, update: bool) -> None:
    """A store that is a file would read as "no baseline"; one that cannot be written fails only
    after the measurement."""
    hint = "pass --cxr-baseline-dir with a folder (or set cxr_baseline_dir in the ini)"
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise SettingsError(f"baseline store {path} {where}, not a directory; {hint}")
    if update:
        check_creatable_dir(path, "baseline store", f"--cxr-update-baselines must write it; {hint}")


def check_openvino_cache(resolved: Iterable[ResolvedBackend]) -> None:
    """The IR cache must be writable when an OpenVINO backend will run (its lock lives there)."""
    if not any(r.availability.ok and r.spec.name.startswith("openvino") for r in resolved):
        return
    from .backends.openvino_cache import ENV_VAR, cache_root

    root = cache_root()
    check_creatable_dir(
        root,
        "OpenVINO IR cache",
        f"set {ENV_VAR} to a writable folder (the cache goes to ${ENV_VAR}/openvino)",
    )


def validate_run(
    settings: Settings, resolved: list[ResolvedBackend], options: Mapping[str, object]
) -> list[str]:
    """Run every check; raise the first problem, return the warnings. ``options`` are the
    command-line values by dest (``vars(config.option)``)."""
    from .model.loader import check_model
    from .model.study import check_studies

    check_empty_options(options)
    names = backend_names()
    check_tolerances(settings.tolerances, names)
    check_thresholds(settings.thresholds, names)
    outputs = {
        "--cxr-json": (settings.json_path, "results.json"),
        "--cxr-markdown": (settings.markdown_path, "cxrperf.md"),
        "--cxr-html": (settings.html_path, "cxrperf.html"),
        "--cxr-bmf": (settings.bmf_path, "bmf.json"),
    }
    for flag, (path, example) in outputs.items():
        if path is not None:
            check_output_file(path, flag, example)
    check_baseline_store(settings.baseline_dir, settings.update_baselines)
    check_openvino_cache(resolved)
    check_model(settings.model)
    check_studies(settings.studies_dir)
    if settings.throughput:
        check_worklist_fits(
            settings.model, settings.studies_dir, settings.concurrency, settings.max_new_tokens
        )
    warning = threads_warning(settings.threads)
    return [warning] if warning else []


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def check_worklist_fits(model: str, studies_dir: object, concurrency: int, new_tokens: int) -> None:
    """A usage error (before any model is built) when the throughput test's ``concurrency``
    studies would not fit in memory: the decoder's dimensions come from the model's config (a
    preset, or a checkpoint's config file), the longest sequence from the studies' views."""
    from .model.loader import architecture_of
    from .model.study import load_studies
    from .throughput import worklist_fit_problem

    config = architecture_of(model)
    available = available_memory_bytes()
    if config is None or available is None:
        return
    views = max((len(s.images()) for s in load_studies(studies_dir)), default=1)  # type: ignore[arg-type]
    tokens = views * config.image_tokens_per_image + PROMPT_TEXT_TOKENS + new_tokens
    problem = worklist_fit_problem(config.decoder, tokens, concurrency, available)
    if problem:
        raise SettingsError(problem)
