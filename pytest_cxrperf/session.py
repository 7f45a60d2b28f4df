"""The run's state: settings, the resolved backends, the reference model, prepared runners, results.

One :class:`CxrSession` lives in ``config.stash`` for the whole pytest session. It does the domain
work the suite's tests ask for (prepare once, measure, compare) so that the plugin module and the
tests stay thin.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backends.base import (
    Availability,
    Backend,
    Generation,
    Runner,
    StageTimings,
    get_backend_class,
)
from .backends.slowdown import SlowedRunner
from .errors import BackendUnavailable
from .gate import equivalence
from .settings import BackendSpec, Settings

if TYPE_CHECKING:
    import torch

    from .gate.baselines import Baseline
    from .gate.decision import Verdict
    from .model.loader import ReferenceModel
    from .model.processor import ModelInputs
    from .model.study import Study

REFERENCE_BACKEND = "eager"
GROUND_TRUTH_MODELS = ("toy",)  # trained to write the phantom's findings; random models are not


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
class BackendResult:
    label: str
    precision: str = ""
    samples_s: list[float] = field(default_factory=list)
    stages: list[StageTimings] = field(default_factory=list)
    control_samples_s: list[float] = field(default_factory=list)
    prepare_seconds: float | None = None
    prepare_details: dict[str, Any] = field(default_factory=dict)
    equivalence: dict[str, dict[str, Any]] = field(default_factory=dict)  # study -> check -> data
    outputs: dict[str, str] = field(default_factory=dict)  # study -> generated text
    gate: Verdict | None = None  # the latency gate's verdict (gate_latency)

    def equivalence_failures(self) -> list[str]:
        return [
            f"{study}: {check}"
            for study, checks in sorted(self.equivalence.items())
            for check, data in sorted(checks.items())
            if not data["ok"]
        ]


@dataclass
class ReferenceOutput:
    generation: Generation
    teacher_logits: torch.Tensor


def resolve_backends(settings: Settings) -> list[ResolvedBackend]:
    """Instantiate the requested backends; an unavailable one that was named is an error."""
    from .backends.base import backend_names

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
        self.results: dict[str, BackendResult] = {}
        self.notices: list[str] = []
        self._reference: ReferenceModel | None = None
        self._studies: list[Study] | None = None
        self._inputs: dict[str, ModelInputs] = {}
        self._prepared: dict[str, PreparedBackend] = {}
        self._reference_outputs: dict[str, ReferenceOutput] = {}
        self.model_load_seconds: float | None = None

    # ---- what the run covers -------------------------------------------------------------
    @property
    def runnable(self) -> list[ResolvedBackend]:
        return [r for r in self.resolved if r.availability.ok]

    @property
    def unavailable(self) -> list[ResolvedBackend]:
        return [r for r in self.resolved if not r.availability.ok]

    def result(self, label: str) -> BackendResult:
        return self.results.setdefault(label, BackendResult(label))

    # ---- model, studies, inputs ------------------------------------------------------------
    @property
    def reference(self) -> ReferenceModel:
        if self._reference is None:
            from .model.loader import load_model

            start = time.perf_counter()
            self._reference = load_model(self.settings.model)
            self.model_load_seconds = time.perf_counter() - start
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

    # ---- backends --------------------------------------------------------------------------
    def prepared(self, spec: BackendSpec) -> PreparedBackend:
        """Prepare a backend once per session (conversion/compilation is not latency)."""
        if spec.label in self._prepared:
            return self._prepared[spec.label]
        base = self._prepared.get(spec.name) if spec.slow != 1.0 else None
        if base is None:
            backend = get_backend_class(spec.name)(threads=self.settings.threads)
            notice = backend.notice()
            if notice and notice not in self.notices:
                self.notices.append(notice)
            example = self.inputs(self.studies[0])
            start = time.perf_counter()
            runner = backend.prepare(self.reference, example)
            seconds = time.perf_counter() - start
            base = PreparedBackend(BackendSpec(spec.name), backend, runner, seconds)
            self._prepared[spec.name] = base
        prepared = base
        if spec.slow != 1.0:
            prepared = PreparedBackend(
                spec, base.backend, SlowedRunner(base.runner, spec.slow), base.prepare_seconds
            )
            self._prepared[spec.label] = prepared
        return prepared

    def use(self, spec: BackendSpec) -> PreparedBackend:
        """A backend selected for this run: prepared once, and given a row in the results (the
        eager control and reference outputs use :meth:`prepared` without one)."""
        prepared = self.prepared(spec)
        result = self.result(spec.label)
        result.precision = prepared.precision
        result.prepare_seconds = prepared.prepare_seconds
        result.prepare_details = dict(prepared.backend.prepare_info.details)
        return prepared

    # ---- latency ---------------------------------------------------------------------------
    def measure_latency(self, prepared: PreparedBackend, benchmark: Any) -> BackendResult:
        """Fixed-length generation, timed by pytest-benchmark's pedantic mode, with an eager fp32
        control round run (untimed by the benchmark) before each round of another backend, so
        the speedup is measured in the same conditions."""
        settings = self.settings
        inputs = self.inputs(self.studies[0])
        tokens = settings.max_new_tokens
        control = None
        if prepared.label != REFERENCE_BACKEND:
            control = self.prepared(BackendSpec(REFERENCE_BACKEND)).runner
        result = self.result(prepared.label)
        samples: list[float] = []
        stages: list[StageTimings] = []
        control_samples: list[float] = []

        def timed(runner: Runner) -> tuple[float, Generation]:
            start = time.perf_counter()
            generation = runner.generate(inputs, tokens, force_length=True)
            return time.perf_counter() - start, generation

        def one_round() -> None:
            seconds, generation = timed(prepared.runner)
            samples.append(seconds)
            stages.append(generation.timings)

        def control_round() -> None:
            assert control is not None
            control_samples.append(timed(control)[0])

        for _ in range(settings.warmup):
            timed(prepared.runner)
            if control is not None:
                timed(control)
        benchmark.pedantic(
            one_round,
            setup=control_round if control is not None else None,
            rounds=settings.rounds,
            warmup_rounds=0,
            iterations=1,
        )
        if control is None:
            control_samples = list(samples)
        result.samples_s, result.stages, result.control_samples_s = samples, stages, control_samples
        medians = stage_medians(stages)
        benchmark.extra_info.update(
            {
                "backend": prepared.label,
                "precision": prepared.precision,
                "new_tokens": tokens,
                "threads": settings.threads,
                "prompt_tokens": inputs.prompt_length,
                **{f"median_{k}": v for k, v in medians.items()},
                "control_samples_s": control_samples,
            }
        )
        return result

    # ---- latency gate ----------------------------------------------------------------------
    def latency_baseline(self, prepared: PreparedBackend) -> Baseline:
        """This run's latency of a backend, in the form the baseline store keeps."""
        from .gate.baselines import Baseline, model_key, now_iso
        from .machine import fingerprint, fingerprint_facts, library_versions

        settings, reference = self.settings, self.reference
        result = self.result(prepared.label)
        is_reference = prepared.label == REFERENCE_BACKEND
        return Baseline(
            backend=prepared.label,
            model=model_key(reference.name, reference.source, reference.weights_hash),
            fingerprint=fingerprint(settings.threads),
            samples_s=tuple(result.samples_s),
            control_samples_s=None if is_reference else tuple(result.control_samples_s),
            new_tokens=settings.max_new_tokens,
            threads=settings.threads,
            rounds=len(result.samples_s),
            warmup=settings.warmup,
            precision=prepared.precision,
            created=now_iso(),
            machine=fingerprint_facts(settings.threads),
            libraries=library_versions(),
            stage_medians_s=stage_medians(result.stages),
            model_info=reference.describe(),
        )

    def gate_latency(self, prepared: PreparedBackend) -> Verdict:
        """Judge the measured latency against the stored baseline, or (``--cxr-update-baselines``)
        store it; the verdict is kept on the result for the summary and the JSON report."""
        from dataclasses import replace

        from .gate.baselines import BaselineError, BaselineStore
        from .gate.decision import ERROR, UPDATED, Timings, Verdict, judge

        settings = self.settings
        label = prepared.label
        threshold, alpha = settings.threshold_for(prepared.name), settings.alpha
        store = BaselineStore(settings.baseline_dir)
        try:
            record = self.latency_baseline(prepared)
            current = Timings(
                record.samples_s,
                record.control_samples_s,
                record.fingerprint,
                record.new_tokens,
                is_reference=label == REFERENCE_BACKEND,
            )
            if settings.update_baselines and prepared.spec.slow == 1.0:
                before, path = store.write(record)
                if before is None:
                    notes: tuple[str, ...] = ("new baseline",)
                    verdict = Verdict(
                        label, UPDATED, False, threshold, alpha, str(path), notes=notes
                    )
                else:
                    compared = judge(
                        label, current, before.timings(), threshold=threshold, alpha=alpha
                    )
                    notes = (f"replaced the baseline of {before.created}",)
                    verdict = replace(
                        compared, status=UPDATED, failed=False, baseline_path=str(path), notes=notes
                    )
            else:
                found = store.find(
                    record.fingerprint, record.model, prepared.name, threads=settings.threads
                )
                verdict = judge(
                    label,
                    current,
                    found.baseline.timings() if found.baseline else None,
                    missing=settings.missing_baseline,
                    fail_on_improvement=settings.fail_on_improvement,
                    baseline_path=str(found.path) if found.path else None,
                    threshold=threshold,
                    alpha=alpha,
                )
                if found.other_threads:
                    listed = ", ".join(f"--cxr-threads={t}" for t in found.other_threads)
                    hint = f"baselines of {prepared.name} exist for {listed} only"
                    verdict = replace(verdict, notes=(*verdict.notes, hint))
                if settings.update_baselines:
                    notes = (*verdict.notes, "a synthetic slowdown is never stored as a baseline")
                    verdict = replace(verdict, notes=notes)
        except BaselineError as exc:
            verdict = Verdict(label, ERROR, True, threshold, alpha, notes=(str(exc),))
        self.result(label).gate = verdict
        return verdict

    # ---- equivalence -----------------------------------------------------------------------
    def reference_output(self, study: Study) -> ReferenceOutput:
        if study.name not in self._reference_outputs:
            runner = self.prepared(BackendSpec(REFERENCE_BACKEND)).runner
            inputs = self.inputs(study)
            generation = runner.generate(inputs, self.settings.max_new_tokens, return_logits=True)
            teacher = runner.score(inputs, generation.token_ids)
            self._reference_outputs[study.name] = ReferenceOutput(generation, teacher)
        return self._reference_outputs[study.name]

    def check_equivalence(
        self, prepared: PreparedBackend, study: Study
    ) -> dict[str, dict[str, Any]]:
        """Run the backend on the study and compare it with eager fp32; results are cached."""
        result = self.result(prepared.label)
        if study.name in result.equivalence:
            return result.equivalence[study.name]
        tolerances = equivalence.tolerances_for(
            prepared.precision, prepared.name, self.settings.tolerances
        )
        reference = self.reference_output(study)
        inputs = self.inputs(study)
        candidate = prepared.runner.generate(
            inputs, self.settings.max_new_tokens, return_logits=True
        )
        teacher = prepared.runner.score(inputs, reference.generation.token_ids)
        assert reference.generation.step_logits is not None
        tokens = equivalence.compare_tokens(
            reference.generation.token_ids,
            candidate.token_ids,
            reference.generation.step_logits,
            tolerances.tie_margin,
        )
        prefill = equivalence.compare_prefill_logits(
            reference.teacher_logits[0], teacher[0], tolerances.prefill_rel_err
        )
        agreement = equivalence.compare_teacher_forced(
            reference.teacher_logits, teacher, tolerances.teacher_top1, tolerances.tie_margin
        )
        checks = {
            "token_ids": {
                "ok": tokens.ok,
                "message": tokens.message,
                "matched_prefix": tokens.matched_prefix,
                "reference_length": tokens.reference_length,
                "backend_length": tokens.candidate_length,
                "margin_std": tokens.margin,
            },
            "prefill_logits": {
                "ok": prefill.ok,
                "message": prefill.message,
                "rel_err": prefill.rel_err,
                "max_abs_err": prefill.max_abs_err,
                "same_top1": prefill.same_top1,
            },
            "teacher_forced_top1": {
                "ok": agreement.ok,
                "message": agreement.message,
                "agreement": agreement.agreement,
                "identical_top1": agreement.raw_agreement,
                "positions": agreement.positions,
            },
            "clinical_findings": clinical_check(
                reference.generation.text, candidate.text, "the eager fp32 reference"
            ),
        }
        if study.reference_findings is not None and self.reference.name in GROUND_TRUTH_MODELS:
            truth = clinical_check(
                study.reference_findings, candidate.text, "the study's ground truth"
            )
            eos = self.reference.config.eos_token_id
            if not truth["ok"] and candidate.token_ids[-1:] != [eos]:
                truth["message"] += (
                    f" (the report was cut at {len(candidate.token_ids)} tokens before its end: "
                    "raise --cxr-max-new-tokens)"
                )
            checks["ground_truth_findings"] = truth
        result.equivalence[study.name] = checks
        result.outputs[study.name] = candidate.text
        result.precision = prepared.precision
        return checks


def clinical_check(reference_text: str, candidate_text: str, against: str) -> dict[str, Any]:
    """Do two reports assert the same findings (label, present/absent/uncertain, side)?

    Token and n-gram metrics rate "small left effusion" and "no left effusion" as nearly equal;
    this compares what a radiologist would act on."""
    from . import findings

    expected, found = findings.extract(reference_text), findings.extract(candidate_text)
    differences = findings.compare(expected, found)
    summary = "; ".join(f.describe() for f in found) or "no findings asserted"
    message = (
        f"asserts the same findings as {against}: {summary}"
        if not differences
        else f"findings differ from {against}: " + "; ".join(differences)
    )
    return {
        "ok": not differences,
        "message": message,
        "expected": findings.to_json(expected),
        "found": findings.to_json(found),
        "differences": differences,
    }


def stage_medians(stages: list[StageTimings]) -> dict[str, float]:
    if not stages:
        return {}
    rows = [s.as_dict() for s in stages]
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}
