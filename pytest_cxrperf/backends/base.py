"""The backend protocol, the values a generation returns, and the backend registry.

A backend knows whether it can run here (:meth:`Backend.availability`) and turns the reference model
into a :class:`Runner` once per session (:meth:`Backend.prepare`). Backends come from one place,
the entry-point group ``pytest_cxrperf.backends`` (name -> Backend subclass), built-ins included,
imported only when used; :func:`register_backend` adds one defined in a ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch

from ..errors import BackendUnavailable
from .timings import StageTimings as StageTimings  # re-exported: the public name

if TYPE_CHECKING:
    from ..model.loader import ReferenceModel
    from ..model.processor import ModelInputs

ENTRY_POINT_GROUP = "pytest_cxrperf.backends"
PRECISIONS = ("fp32", "bf16", "int8-weights", "int4-weights", "int8")


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Availability:
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)


@dataclass(frozen=True)
class Generation:
    """Greedy output of one backend on one study."""

    token_ids: list[int]
    text: str
    timings: StageTimings
    step_logits: torch.Tensor | None = None  # [new_tokens, vocab] float32, when requested


class Runner(Protocol):
    """A prepared backend: generates greedily with a KV cache and scores teacher-forced targets."""

    def generate(
        self,
        inputs: ModelInputs,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
    ) -> Generation: ...

    def score(self, inputs: ModelInputs, target_ids: list[int]) -> torch.Tensor:
        """Logits [len(target_ids), vocab] (float32) predicting each target token, in one pass."""
        ...


@dataclass
class PrepareInfo:
    """What preparing a backend cost, reported apart from latency."""

    seconds: float = 0.0
    details: dict[str, object] = field(default_factory=dict)


class Backend:
    """Base class for backends. Subclasses set ``name`` and ``precision`` and implement prepare."""

    name: ClassVar[str] = ""
    precision: ClassVar[str] = "fp32"
    description: ClassVar[str] = ""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.prepare_info = PrepareInfo()

    def availability(self) -> Availability:
        return Availability.yes()

    def build(self, reference: ReferenceModel) -> None:
        """One-time work whose result outlives the session (OpenVINO's IR export, cached on disk),
        done before :meth:`prepare` is measured: prepare's time and peak memory are then what
        loading costs on every run, alike on a runner whose cache is cold and on one whose cache
        is warm (a fresh CI machine exporting under the sampler read as a memory regression)."""

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        raise NotImplementedError

    def notice(self) -> str | None:
        """A one-time message printed when the backend is used (e.g. a deprecation)."""
        return None

    def cpu_notes(self) -> list[str]:
        """What this CPU does to the backend's speed (bf16 emulated, int8 without VNNI, AMX), so a
        slow bf16 row on an AVX2 host reads as the CPU's doing, not a regression."""
        from ..machine import cpu_flags
        from .cpu_support import speed_notes

        return speed_notes(self.name, self.precision, cpu_flags())


BackendFactory = Callable[..., Backend]
_registry: dict[str, type[Backend]] = {}  # loaded or registered classes, by name
_entry_point_errors: dict[str, str] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Register a Backend subclass under ``cls.name`` (usable as a class decorator), for a backend
    defined where no package metadata can name it (a ``conftest.py``). It takes precedence over
    an entry point of the same name. Installed backends, built-ins included, are entry points."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.precision not in PRECISIONS:
        raise ValueError(f"{cls.__qualname__}.precision must be one of {PRECISIONS}")
    _registry[cls.name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    """The installed backends, by name, not yet imported (the first of a duplicated name)."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def _load(name: str, ep: Any) -> type[Backend] | None:
    """Import one entry point's class and register it; a failure is kept as the backend's error
    (a broken third-party backend must not break the others)."""
    try:
        cls = ep.load()
    except Exception as exc:
        _entry_point_errors[name] = f"entry point {ep.value} failed to import: {exc}"
        return None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        _entry_point_errors[name] = f"entry point {ep.value} is not a Backend subclass"
        return None
    if not cls.name:
        cls.name = name
    if cls.name != name:
        _entry_point_errors[name] = (
            f"entry point {ep.value} names its backend {cls.name!r}, not {name!r}"
        )
        return None
    return register_backend(cls)


def backend_names() -> list[str]:
    """Every known backend name, in a stable order (eager first: it is the reference). Nothing
    is imported to list them."""
    names = sorted(set(_registry) | set(_entry_points()))
    return sorted(names, key=lambda n: (n != "eager", n))


def get_backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``: registered in this process, or imported from its entry
    point on first use."""
    if name in _registry:
        return _registry[name]
    if name not in _entry_point_errors:
        ep = _entry_points().get(name)
        if ep is None:
            raise BackendUnavailable(
                f"unknown backend {name!r}; known backends: {', '.join(backend_names())}; "
                f"backends come from the entry-point group {ENTRY_POINT_GROUP!r} of installed "
                "packages (is pytest-cxrperf installed, not just on the path?)"
            )
        cls = _load(name, ep)
        if cls is not None:
            return cls
    raise BackendUnavailable(f"backend {name!r}: {_entry_point_errors[name]}")
