"""The backend protocol and the values a generation returns.

A backend knows whether it can run here (:meth:`Backend.availability`) and turns the reference model
into a :class:`Runner` once per session (:meth:`Backend.prepare`). Which backends exist, by name,
is :mod:`.registry`'s; what a precision implies, :mod:`.precision`'s. No torch at import (only under
``TYPE_CHECKING``): the plugin lists and checks backends before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from .timings import StageTimings as StageTimings  # re-exported: the public name

if TYPE_CHECKING:
    import torch

    from ..model.loader import ReferenceModel
    from ..model.processor import ModelInputs


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
