"""The run's caches: settings, the resolved backends, the reference model, studies, model inputs,
prepared runners and reference outputs.

One :class:`CxrSession` lives in ``config.stash`` for the whole pytest process. It holds what is
expensive to build and is built once (prepare once, load once); it holds no results: what a run
finds goes into :class:`~pytest_cxrperf.results.RunResults`, filled by the measuring
(:mod:`.gate.latency`) and comparing (:mod:`.gate.equivalence`) code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .backends.base import Availability, Backend, Generation, Runner
from .backends.registry import REFERENCE_BACKEND, backend_names, get_backend_class
from .backends.slowdown import SlowedRunner
from .collected import Collected
from .errors import BackendUnavailable
from .settings import BackendSpec, Settings

if TYPE_CHECKING:
    import torch

    from .machine import MachineClass
    from .memory import Peak
    from .model.loader import ReferenceModel
    from .model.processor import ModelInputs
    from .model.study_record import Study

__all__ = ["REFERENCE_BACKEND", "CxrSession", "PreparedBackend", "ReferenceOutput"]


@dataclass
class ResolvedBackend:
    spec: BackendSpec
    backend: Backend | None
    availability: Availability

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass
class PreparedBackend:
    """What the ``cxr_backend`` fixture yields: a backend ready to run, prepared once."""

    spec: BackendSpec
    backend: Backend
    runner: Runner
    prepare_seconds: float
    prepare_memory: Peak | None = None  # sampled while preparing (None where not measurable)
    generate_memory: Peak | None = None  # sampled over its first generation, right after
    # the backends this process had prepared before this one, in order: memory deltas depend on
    # what the allocator already holds, so they compare only between runs with the same history
    memory_context: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def precision(self) -> str:
        return str(self.backend.precision)


@dataclass
class ReferenceOutput:
    generation: Generation
    teacher_logits: torch.Tensor


def resolve_backends(settings: Settings) -> list[ResolvedBackend]:
    """Instantiate the requested backends; an unavailable one that was named is an error."""
    specs = (
        [BackendSpec(name) for name in backend_names()]
        if settings.select_all
        else list(settings.backends)
    )
    resolved: list[ResolvedBackend] = []
    for spec in specs:
        try:
            backend = get_backend_class(spec.name)(threads=settings.threads)
            availability = backend.availability()
        except BackendUnavailable as exc:
            if not settings.select_all:
                raise
            backend, availability = None, Availability.no(str(exc))
        if not availability.ok and not settings.select_all:
            raise BackendUnavailable(
                f"backend {spec.name!r} was requested but cannot run here: {availability.reason}"
            )
        resolved.append(ResolvedBackend(spec, backend, availability))
    return resolved


class CxrSession:
    def __init__(self, settings: Settings, resolved: list[ResolvedBackend]) -> None:
        self.settings = settings
        self.resolved = resolved
        self._reference: ReferenceModel | None = None
        self._studies: list[Study] | None = None
        self._inputs: dict[str, ModelInputs] = {}
        self._prepared: dict[str, PreparedBackend] = {}
        self._reference_outputs: dict[str, ReferenceOutput] = {}
        self._generations: dict[tuple[str, str], Generation] = {}
        self.model_load_seconds: float | None = None
        self.model_load_memory: Peak | None = None
        # which backends the collected tests use (set once, at the end of collection)
        self.collected = Collected()
        self._campaigns: set[str] = set()  # the campaigns this session started

    # ---- what the run covers -------------------------------------------------------------
    @property
    def runnable(self) -> list[ResolvedBackend]:
        return [r for r in self.resolved if r.availability.ok]

    @property
    def unavailable(self) -> list[ResolvedBackend]:
        return [r for r in self.resolved if not r.availability.ok]

    # ---- model, studies, inputs ------------------------------------------------------------
    @property
    def reference(self) -> ReferenceModel:
        if self._reference is None:
            from .memory import sampled
            from .model.loader import load_model

            start = time.perf_counter()
            model, self.model_load_memory = sampled(lambda: load_model(self.settings.model))
            self.model_load_seconds = time.perf_counter() - start
            self._reference = model
        return self._reference

    @property
    def reference_loaded(self) -> ReferenceModel | None:
        """The reference model if this process has loaded it (never loads it)."""
        return self._reference

    @property
    def studies(self) -> list[Study]:
        if self._studies is None:
            from .model.study import load_studies

            self._studies = load_studies(self.settings.studies_dir)
        return self._studies

    def inputs(self, study: Study) -> ModelInputs:
        if study.name not in self._inputs:
            self._inputs[study.name] = self.reference.processor(study)
        return self._inputs[study.name]

    @cached_property
    def timed_cost(self) -> dict[str, float]:
        """The work of one timed generation (the first study: what the latency campaign times),
        counted once from the reference model, as plain numbers for the results (the roofline's
        :class:`~pytest_cxrperf.roofline.ModelCost`)."""
        from .roofline import model_cost

        inputs = self.inputs(self.studies[0])
        images = int(inputs.pixel_values.shape[0])
        return model_cost(self.reference.model, inputs.prompt_length, images).to_dict()

    @cached_property
    def machine_class(self) -> MachineClass:
        """This machine's class at this thread count: what baselines are recorded for and
        judged against."""
        from .machine import machine_class

        return machine_class(self.settings.threads)

    @property
    def fingerprint(self) -> str:
        """The machine class's key: the first two levels of the baseline store."""
        return self.machine_class.key

    @cached_property
    def legacy_fingerprint(self) -> str:
        """This host's id in the pre-class baseline layout (files recorded before classes)."""
        from .machine import legacy_fingerprint

        return legacy_fingerprint(self.settings.threads)

    @cached_property
    def model_key(self) -> str:
        """The reference model's name in the baseline store."""
        from .gate.baselines import model_key

        reference = self.reference
        return model_key(reference.name, reference.source, reference.weights_hash)

    @property
    def notices(self) -> list[str]:
        """What the loaded model and the prepared backends say (e.g. "IPEX is archived") and what
        this CPU does to their speed ("bf16 is emulated"): read from the cached objects, kept
        nowhere else (the results collect them)."""
        said = list(self._reference.notices) if self._reference is not None else []
        said += [p.backend.notice() or "" for p in self._prepared.values()]
        said += [n for p in self._prepared.values() for n in p.backend.cpu_notes()]
        return list(dict.fromkeys(n for n in said if n))

    # ---- campaigns -------------------------------------------------------------------------
    def starts_campaign(self, name: str) -> bool:
        """True the first time only: the caller runs campaign ``name`` (once per session, even
        when it raised: a broken campaign is reported by the test that ran it, not re-run by
        every test after it)."""
        if name in self._campaigns:
            return False
        self._campaigns.add(name)
        return True

    # ---- backends --------------------------------------------------------------------------
    def prepared(self, spec: BackendSpec) -> PreparedBackend:
        """Prepare a backend once per session (conversion/compilation is not latency)."""
        if spec.label in self._prepared:
            return self._prepared[spec.label]
        base = self._prepared.get(spec.name) if spec.slow != 1.0 else None
        if base is None:
            backend = get_backend_class(spec.name)(threads=self.settings.threads)
            from .memory import sampled

            example = self.inputs(self.studies[0])
            reference = self.reference

            # a cold on-disk cache (OpenVINO IR) is filled outside the sampler: prepare is
            # measured as a load, the same on a fresh runner as on one that ran before
            backend.build(reference)

            def prepare() -> tuple[Runner, float]:
                start = time.perf_counter()
                runner = backend.prepare(reference, example)
                return runner, time.perf_counter() - start

            (runner, seconds), memory = sampled(prepare)
            # the first generation allocates the activations and KV cache: sampled here, once,
            # apart from every timed round (later rounds reuse what it allocated)
            tokens = self.settings.max_new_tokens
            _, first = sampled(lambda: runner.generate(example, tokens, force_length=True))
            before = tuple(name for name in self._prepared if "+" not in name)
            base = PreparedBackend(
                BackendSpec(spec.name), backend, runner, seconds, memory, first, before
            )
            self._prepared[spec.name] = base
        prepared = base
        if spec.slow != 1.0:
            slowed = SlowedRunner(base.runner, spec.slow, spec.stage)
            slowed.calibrate(self.inputs(self.studies[0]), self.settings.max_new_tokens)
            prepared = PreparedBackend(
                spec,
                base.backend,
                slowed,
                base.prepare_seconds,
                base.prepare_memory,
                base.generate_memory,
                base.memory_context,
            )
            self._prepared[spec.label] = prepared
        return prepared

    # ---- the reference's outputs -----------------------------------------------------------
    def reference_output(self, study: Study) -> ReferenceOutput:
        """Eager fp32 on a study: its greedy generation (with logits) and teacher-forced logits."""
        if study.name not in self._reference_outputs:
            runner = self.prepared(BackendSpec(REFERENCE_BACKEND)).runner
            inputs = self.inputs(study)
            generation = runner.generate(inputs, self.settings.max_new_tokens, return_logits=True)
            teacher = runner.score(inputs, generation.token_ids)
            self._reference_outputs[study.name] = ReferenceOutput(generation, teacher)
        return self._reference_outputs[study.name]

    def generation(self, prepared: PreparedBackend, study: Study) -> Generation:
        """A backend's greedy report on a study, generated once per session (not timed; for
        users' own checks of what the model says)."""
        key = (prepared.label, study.name)
        if key not in self._generations:
            inputs = self.inputs(study)
            self._generations[key] = prepared.runner.generate(inputs, self.settings.max_new_tokens)
        return self._generations[key]
