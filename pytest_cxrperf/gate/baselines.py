"""The baseline store: ``<dir>/<machine-class>/<model>/<backend>.json``.

The machine class (:class:`~pytest_cxrperf.machine.MachineClass`) is two levels,
``<cpu>/<environment>``: a baseline is judged only on a host of its class, never across CPU
classes or library versions (README, "Machine classes"). Files of the pre-class layout (schema
versions 1 and 2, ``<dir>/<host-fingerprint>/<model>/<backend>.json``) still load where they were
recorded on a host like this one, with a note, and ``cxrperf baselines migrate`` moves them.

Plain JSON, one file per backend, so that a refresh shows up in a pull request as a readable diff.
Each file carries a schema version, the machine class and its facts, the settings that affect
timing, library versions, the date, the raw samples (backend and interleaved control) and the
stage medians.

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
from ..machine import (
    LEGACY_ISA_FLAGS,
    MachineClass,
    class_differences,
    class_distance,
    environment_id,
    library_versions,
)
from .decision import CONTROL_EAGER, CONTROL_PROBE, Timings

SCHEMA = "pytest-cxrperf/latency-baseline"
# 2: eager is timed against the machine probe; control, environment recorded
# 3: stored per machine class (``fingerprint`` is the class key), the class's facts recorded
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # a version-1 file reads, and is judged incomparable where it lacks
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
    # the machine class's facts (MachineClass.to_dict); empty in files of the pre-class layout
    machine_class: Mapping[str, Any] = field(default_factory=dict)
    # per-round CPU pressure (share of the round a runnable task waited for a CPU), if measured
    pressure: tuple[float, ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def legacy(self) -> bool:
        """Recorded in the pre-class layout (keyed by a host fingerprint)."""
        return self.schema_version < 3

    def class_facts(self) -> MachineClass:
        """The class it was recorded for; for a pre-class file, what its machine facts say (the
        features it could know of: :data:`~pytest_cxrperf.machine.LEGACY_ISA_FLAGS`)."""
        if self.machine_class:
            return MachineClass.from_dict(self.machine_class)
        cpu = str(self.machine.get("cpu") or "").lower()
        vendor = "amd" if "amd" in cpu else "intel" if "intel" in cpu else "cpu"
        return MachineClass(
            vendor=vendor,
            family=None,
            model=None,
            features=tuple(str(f) for f in self.machine.get("isa") or ()),
            cores=int(self.machine.get("cores") or 0),
            threads=self.threads,
            environment=self.environment,
            arch=str(self.machine.get("arch") or ""),
        )

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
            pressure=self.pressure,
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
            "pressure": [round(p, 4) for p in self.pressure],
            "machine_class": dict(self.machine_class),
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
            pressure = data.get("pressure") or []
            if not isinstance(pressure, list) or not all(
                isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1 for v in pressure
            ):
                raise bad("'pressure' must be a list of shares between 0 and 1")
            machine_class = data.get("machine_class") or {}
            if not isinstance(machine_class, dict):
                raise bad("'machine_class' must be an object")
            if machine_class and machine_class.get("key") != data["fingerprint"]:
                raise bad(
                    f"'machine_class.key' {machine_class.get('key')!r} is not its fingerprint "
                    f"{data['fingerprint']!r}"
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
                machine_class=dict(machine_class),
                pressure=tuple(float(p) for p in pressure),
                schema_version=int(version),
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
    """The result of a look-up: this class's baseline (or None) and its path; where none, the
    nearest class stored for the model and backend, and what sets it apart; ``note``: how it was
    found (a file of the pre-class layout)."""

    baseline: Baseline | None
    path: Path | None
    nearest: str | None = None
    differences: tuple[str, ...] = ()
    note: str = ""

    def missing_hint(self, machine: str) -> str:
        """Why there is no baseline, in one sentence (the verdict's note)."""
        if self.nearest is None:
            return f"no baseline for machine class {machine} (none stored for this model)"
        differs = ", ".join(self.differences) or "the key"
        return (
            f"no baseline for machine class {machine} (nearest stored: {self.nearest}; "
            f"differs in: {differs}); another class's timings are never compared"
        )


class BaselineStore:
    def __init__(self, root: Path | str, lock_timeout: float = 120.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def path_for(self, fingerprint: str, model: str, backend: str) -> Path:
        """``fingerprint``: a machine class key (``<cpu>/<environment>``), or a pre-class host
        fingerprint."""
        return self.root / fingerprint / model / f"{backend}.json"

    def _lock(self) -> Any:
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / LOCK_NAME), timeout=self.lock_timeout)

    def load(self, path: Path) -> Baseline:
        baseline = read_baseline(path)
        try:
            where = path.parent.parent.relative_to(self.root).as_posix()
        except ValueError:
            where = path.parent.parent.name
        expected = (where, path.parent.name, path.stem)
        found = (baseline.fingerprint, baseline.model, baseline.backend)
        if found != expected:
            raise BaselineError(
                f"{path}: it says it holds {'/'.join(found)} but lies at {'/'.join(expected)}; "
                "baselines must not be moved between machine classes by hand (another class has "
                "other relative speeds): move it back, or record one here with "
                "--cxr-update-baselines"
            )
        return baseline

    def find(
        self,
        machine: MachineClass | str,
        model: str,
        backend: str,
        legacy_fingerprint: str | None = None,
    ) -> Found:
        """This machine class's baseline, else a pre-class file recorded on a host with this
        host's ``legacy_fingerprint`` in this environment, else nothing (with the nearest class
        stored). Never another class's. Raises :class:`BaselineError` for an unreadable file."""
        key = machine.key if isinstance(machine, MachineClass) else machine
        own = self.path_for(key, model, backend)
        if own.exists():
            return Found(self.load(own), own)
        if legacy_fingerprint and isinstance(machine, MachineClass):
            old = self.path_for(legacy_fingerprint, model, backend)
            if old.exists():
                baseline = self.load(old)
                if baseline.environment == machine.environment:
                    note = (
                        f"read from the pre-class layout ({old}): this host had the fingerprint it "
                        "was recorded under; `cxrperf baselines migrate` moves it to "
                        f"{self.path_for(key, model, backend)}"
                    )
                    return Found(baseline, old, note=note)
        return self.nearest(machine, model, backend)

    def nearest(self, machine: MachineClass | str, model: str, backend: str) -> Found:
        """No baseline: the stored class nearest to ``machine`` for this model and backend (by
        ISA features first), and what differs."""
        candidates = [
            b
            for _, b in self.records()
            if isinstance(b, Baseline) and b.model == model and b.backend == backend
        ]
        if not candidates:
            return Found(None, None)
        if not isinstance(machine, MachineClass):
            return Found(None, None, nearest=sorted(c.fingerprint for c in candidates)[0])

        # this process's libraries name what moved, where the class is this process's own
        this = library_versions() if machine.environment == environment_id() else {}

        def differences(b: Baseline) -> list[str]:
            compared = LEGACY_ISA_FLAGS if b.legacy else None
            return class_differences(machine, b.class_facts(), compared, (this, b.libraries))

        best = min(
            candidates,
            key=lambda b: (class_distance(machine, b.class_facts()), b.legacy, b.fingerprint),
        )
        return Found(None, None, nearest=best.fingerprint, differences=tuple(differences(best)))

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
        paths = set(self.root.glob("*/*/*/*.json")) | set(self.root.glob("*/*/*.json"))
        for path in sorted(paths):
            try:
                yield path, self.load(path)
            except BaselineError as exc:
                yield path, exc
