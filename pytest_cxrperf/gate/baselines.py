"""The baseline store: ``<dir>/<machine-fingerprint>/<model>/<backend>.json``.

Plain JSON, one file per backend, so that a refresh shows up in a pull request as a readable diff.
Each file carries a schema version, the machine facts behind the fingerprint, the settings that
affect timing, library versions, the date, the raw samples (backend and interleaved eager control)
and the stage medians.

Writes go through a temp file in the same folder and a rename, under a file lock at the store's
root, so parallel workers (pytest-xdist) never leave a half-written or interleaved file. A file
that cannot be read back - corrupt, truncated, a merge conflict, another schema - is an error that
names it, and it is never overwritten: the user decides what happens to it.

No pytest and no torch here: the ``cxrperf`` command uses this module on its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..errors import CxrPerfError
from .decision import CONTROL_EAGER, CONTROL_PROBE, Timings

SCHEMA = "pytest-cxrperf/latency-baseline"
SCHEMA_VERSION = 2  # 2: eager is timed against the machine probe; control, environment recorded
READABLE_VERSIONS = (1, 2)  # a version-1 file reads, and is judged incomparable where it lacks
LOCK_NAME = ".cxrperf.lock"


class BaselineError(CxrPerfError):
    """A baseline file or the baseline store cannot be used."""


class BaselineWarning(UserWarning):
    """A backend's latency could not be judged (no comparable baseline) under the warn policy."""


def model_key(name: str, source: str = "preset", weights_hash: str = "") -> str:
    """The store's folder for a model: the preset name, or ``<dir-name>-<weights-hash8>`` for a
    checkpoint (two checkpoints in folders of the same name must not share baselines)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-") or "model"
    if source == "preset":
        return slug
    return f"{slug}-{weights_hash[:8]}" if weights_hash else slug


@dataclass(frozen=True)
class Baseline:
    """One backend's timings on one machine and model, as stored."""

    backend: str
    model: str
    fingerprint: str
    samples_s: tuple[float, ...]
    # the control's seconds in the same rounds: eager fp32, or the machine probe for eager itself
    # (None in version-1 files, where eager had no control)
    control_samples_s: tuple[float, ...] | None
    new_tokens: int
    threads: int
    rounds: int
    warmup: int = 0
    precision: str = ""
    created: str = ""
    machine: Mapping[str, Any] = field(default_factory=dict)
    libraries: Mapping[str, str] = field(default_factory=dict)
    stage_medians_s: Mapping[str, float] = field(default_factory=dict)
    model_info: Mapping[str, Any] = field(default_factory=dict)
    control: str = CONTROL_EAGER  # what control_samples_s timed: "eager" or "probe"
    probe_repeats: int | None = None  # the machine probe's size (eager only)
    environment: str = ""  # library versions' id (machine.environment_id)
    sessions: int = 1  # fresh processes whose rounds it holds (cxrperf baselines refresh)
    # rounds per session, in order (sums to len(samples_s)); empty where unknown (older files)
    session_rounds: tuple[int, ...] = ()
    # peak memory deltas in MiB ("prepare", "generate"), sampled apart from the timed rounds;
    # empty in files written before memory was measured
    memory_mib: Mapping[str, float] = field(default_factory=dict)
    memory_context: tuple[str, ...] = ()  # backends prepared before it in that process, in order

    @property
    def relpath(self) -> Path:
        return Path(self.fingerprint) / self.model / f"{self.backend}.json"

    def timings(self) -> Timings:
        return Timings(
            samples_s=self.samples_s,
            control_samples_s=self.control_samples_s,
            fingerprint=self.fingerprint,
            new_tokens=self.new_tokens,
            environment=self.environment,
            control=self.control,
            session_rounds=self.session_rounds or (len(self.samples_s),) * (self.sessions == 1),
        )

    @property
    def median_s(self) -> float:
        import statistics

        return statistics.median(self.samples_s)

    @property
    def speedup(self) -> float | None:
        """Median eager control / median backend (higher is faster); None for eager itself."""
        import statistics

        if not self.control_samples_s or self.control != CONTROL_EAGER:
            return None
        return statistics.median(self.control_samples_s) / self.median_s

    def to_json(self) -> dict[str, Any]:
        def rounded(values: tuple[float, ...]) -> list[float]:
            return [round(v, 7) for v in values]

        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "backend": self.backend,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "environment": self.environment,
            "created": self.created,
            "precision": self.precision,
            "settings": {
                "new_tokens": self.new_tokens,
                "threads": self.threads,
                "rounds": self.rounds,
                "warmup": self.warmup,
                "sessions": self.sessions,
                "session_rounds": list(self.session_rounds),
            },
            "median_s": round(self.median_s, 7),
            "speedup_vs_eager": round(self.speedup, 4) if self.speedup is not None else None,
            "stage_medians_s": {k: round(float(v), 7) for k, v in self.stage_medians_s.items()},
            "samples_s": rounded(self.samples_s),
            "control": self.control,
            "probe_repeats": self.probe_repeats,
            "control_samples_s": (
                rounded(self.control_samples_s) if self.control_samples_s is not None else None
            ),
            "memory_mib": {k: round(float(v), 2) for k, v in self.memory_mib.items()},
            "memory_context": list(self.memory_context),
            "machine": dict(self.machine),
            "libraries": dict(self.libraries),
            "model_info": dict(self.model_info),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "baseline") -> Baseline:
        """Validate and build; every problem is a :class:`BaselineError` naming ``where``."""

        def bad(problem: str) -> BaselineError:
            return BaselineError(
                f"{where}: {problem}. The file was left as it is: fix it, or delete it and record "
                "a new baseline with --cxr-update-baselines"
            )

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise bad(f"not a pytest-cxrperf latency baseline (schema {data.get('schema')!r})")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise bad(
                f"schema_version {version!r}, this pytest-cxrperf reads version {SCHEMA_VERSION}"
            )

        def samples(key: str, optional: bool = False) -> tuple[float, ...] | None:
            value = data.get(key)
            if value is None and optional:
                return None
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            ):
                raise bad(f"{key!r} must be a non-empty list of positive seconds")
            import math

            shortest = 1e-6  # json reads Infinity and NaN; 1e-300 s is no measurement
            for v in value:
                if not math.isfinite(v) or v < shortest:
                    raise bad(
                        f"{key!r} holds {v!r}; every sample must be finite, positive seconds, "
                        f"at least {shortest:g}"
                    )
            return tuple(float(v) for v in value)

        try:
            settings = data["settings"]
            if not isinstance(settings, dict):
                raise bad("'settings' must be an object")
            values = samples("samples_s")
            assert values is not None
            control = samples("control_samples_s", optional=True)
            if control is not None and len(control) != len(values):
                raise bad("'control_samples_s' and 'samples_s' differ in length")
            for key in ("backend", "model", "fingerprint"):
                if not isinstance(data[key], str) or not data[key]:
                    raise bad(f"{key!r} must be a non-empty string")
            control_kind = data.get("control") or CONTROL_EAGER
            if control_kind not in (CONTROL_EAGER, CONTROL_PROBE):
                raise bad(f"'control' must be {CONTROL_EAGER!r} or {CONTROL_PROBE!r}")
            memory = data.get("memory_mib") or {}
            if not isinstance(memory, dict) or not all(
                isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in memory.values()
            ):
                raise bad("'memory_mib' must map names to non-negative numbers")
            session_rounds = tuple(settings.get("session_rounds") or ())
            if session_rounds and (
                not all(isinstance(n, int) and n > 0 for n in session_rounds)
                or sum(session_rounds) != len(values)
            ):
                raise bad(
                    "'settings.session_rounds' must be positive round counts summing to the "
                    f"{len(values)} samples"
                )
            probe_repeats = data.get("probe_repeats")
            if probe_repeats is not None and (
                not isinstance(probe_repeats, int) or probe_repeats < 1
            ):
                raise bad("'probe_repeats' must be a positive integer")
            return cls(
                backend=data["backend"],
                model=data["model"],
                fingerprint=data["fingerprint"],
                samples_s=values,
                control_samples_s=control,
                new_tokens=int(settings["new_tokens"]),
                threads=int(settings["threads"]),
                rounds=int(settings.get("rounds", len(values))),
                warmup=int(settings.get("warmup", 0)),
                precision=str(data.get("precision", "")),
                created=str(data.get("created", "")),
                machine=dict(data.get("machine") or {}),
                libraries=dict(data.get("libraries") or {}),
                stage_medians_s=dict(data.get("stage_medians_s") or {}),
                model_info=dict(data.get("model_info") or {}),
                control=control_kind,
                probe_repeats=probe_repeats,
                environment=str(data.get("environment") or ""),
                sessions=int(settings.get("sessions", 1)),
                session_rounds=session_rounds,
                memory_mib={str(k): float(v) for k, v in memory.items()},
                memory_context=tuple(str(c) for c in data.get("memory_context") or ()),
            )
        except KeyError as exc:
            raise bad(f"missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise bad(f"invalid value ({exc})") from None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_baseline(path: Path) -> Baseline:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        stripped = text.strip()
        if stripped.startswith(("<<<<<<<", "=======", ">>>>>>>")) or "\n<<<<<<< " in text:
            problem = "corrupt JSON (a merge conflict marker)"
        elif not stripped.endswith("}"):
            problem = "truncated JSON"
        else:
            problem = "corrupt JSON"
        raise BaselineError(
            f"{path}: {problem} ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "The file was left as it is: fix it, or delete it and record a new baseline with "
            "--cxr-update-baselines"
        ) from None
    return Baseline.from_json(data, str(path))


@dataclass(frozen=True)
class Found:
    """The result of a look-up: the baseline (or None), its path, and whether it was recorded on
    another machine (fingerprint) than the one asked for."""

    baseline: Baseline | None
    path: Path | None
    foreign: bool = False
    other_threads: tuple[int, ...] = ()  # thread settings of foreign baselines passed over


class BaselineStore:
    def __init__(self, root: Path | str, lock_timeout: float = 120.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def path_for(self, fingerprint: str, model: str, backend: str) -> Path:
        return self.root / fingerprint / model / f"{backend}.json"

    def _lock(self) -> Any:
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / LOCK_NAME), timeout=self.lock_timeout)

    def load(self, path: Path) -> Baseline:
        baseline = read_baseline(path)
        expected = (path.parent.parent.name, path.parent.name, path.stem)
        found = (baseline.fingerprint, baseline.model, baseline.backend)
        if found != expected:
            raise BaselineError(
                f"{path}: it says it holds {'/'.join(found)} but lies at {'/'.join(expected)}; "
                "baselines must not be moved between machines by hand (a different machine has "
                "different absolute times): move it back, or record one here with "
                "--cxr-update-baselines"
            )
        return baseline

    def find(self, fingerprint: str, model: str, backend: str, threads: int | None = None) -> Found:
        """This machine's baseline, else the newest one of another machine recorded with the same
        thread setting (a backend's speedup over eager depends on it, so only those serve the
        relative check), else nothing. Raises :class:`BaselineError` for an unreadable file."""
        own = self.path_for(fingerprint, model, backend)
        if own.exists():
            return Found(self.load(own), own)
        others, passed_over = [], set()
        if self.root.is_dir():
            for path in sorted(self.root.glob(f"*/{model}/{backend}.json")):
                baseline = self.load(path)
                if threads is not None and baseline.threads != threads:
                    passed_over.add(baseline.threads)
                    continue
                others.append((baseline.created, str(path), baseline, path))
        if not others:
            return Found(None, None, other_threads=tuple(sorted(passed_over)))
        _, _, baseline, path = max(others, key=lambda item: (item[0], item[1]))
        return Found(baseline, path, foreign=True)

    def write(self, baseline: Baseline) -> tuple[Baseline | None, Path]:
        """Write atomically under the store lock; returns the baseline it replaced (if any).

        An existing file that cannot be read is not overwritten (:class:`BaselineError`)."""
        if "+" in baseline.backend:
            raise BaselineError(
                f"{baseline.backend}: a synthetic slowdown is never stored as a baseline; it is "
                "compared with the base backend's baseline"
            )
        from filelock import Timeout

        path = self.path_for(baseline.fingerprint, baseline.model, baseline.backend)
        lock = self._lock()
        try:
            with lock:
                before = self.load(path) if path.exists() else None
                write_json_atomic(path, baseline.to_json())
        except Timeout:
            raise BaselineError(
                f"{path}: not written, another process held the store lock {lock.lock_file} for "
                f"{self.lock_timeout:g} s; if none is running, delete the lock file"
            ) from None
        return before, path

    def records(self) -> Iterator[tuple[Path, Baseline | BaselineError]]:
        """Every baseline file in the store (sorted), or the error that reading it gave."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*/*.json")):
            try:
                yield path, self.load(path)
            except BaselineError as exc:
                yield path, exc
