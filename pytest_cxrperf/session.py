"""The run's state: settings, the resolved backends, the reference model, prepared runners, results.

One :class:`CxrSession` lives in ``config.stash`` for the whole pytest session. It does the domain
work the suite's tests ask for (prepare once, measure, compare) so that the plugin module and the
tests stay thin.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from functools import cached_property
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
    gate: Verdict | None = None  # the latency gate's verdict
    control: str = "eager"  # what control_samples_s timed: "eager", or "probe" for eager itself

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
        # the latency campaign: the specs whose latency tests were collected, and what it found
        self.latency_specs: list[BackendSpec] = []
        self._campaign_done = False
        self.campaign: Any = None
        self.latency_plan: Any = None
        self.probe: Any = None

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
            slowed = SlowedRunner(base.runner, spec.slow, spec.stage)
            slowed.calibrate(self.inputs(self.studies[0]), self.settings.max_new_tokens)
            prepared = PreparedBackend(spec, base.backend, slowed, base.prepare_seconds)
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
    def latency(self, prepared: PreparedBackend) -> BackendResult:
        """The backend's measured and judged latency. The first call runs the campaign for every
        backend whose latency test was collected (:attr:`latency_specs`), interleaved; later
        calls read its results."""
        if not self._campaign_done:
            self._campaign_done = True
            specs = list(self.latency_specs) or [prepared.spec]
            if prepared.spec not in specs:
                specs.append(prepared.spec)
            self._run_latency_campaign([self.use(spec) for spec in specs])
        result = self.result(prepared.label)
        if result.gate is None:  # collected after the campaign ran (not expected)
            self._run_latency_campaign([prepared])
        return result

    def _run_latency_campaign(self, backends: list[PreparedBackend]) -> None:
        from .gate.baselines import BaselineError, BaselineStore
        from .gate.decision import ERROR, MIN_BATCHES, Plan, Verdict
        from .latency import CONTROL_EAGER, CONTROL_PROBE, Subject, run_campaign

        settings = self.settings
        inputs = self.inputs(self.studies[0])
        tokens = settings.max_new_tokens
        store = BaselineStore(settings.baseline_dir)
        baselines: dict[str, Any] = {}
        for prepared in backends:
            try:
                baselines[prepared.label] = store.find(
                    self._fingerprint, self._model_key, prepared.name, threads=settings.threads
                )
            except BaselineError as exc:
                baselines[prepared.label] = exc

        def generation(runner: Runner) -> Any:
            return lambda: runner.generate(inputs, tokens, force_length=True).timings

        eager = self.prepared(BackendSpec(REFERENCE_BACKEND)).runner
        subjects = [
            Subject(
                p.label,
                generation(p.runner),
                CONTROL_PROBE if p.name == REFERENCE_BACKEND else CONTROL_EAGER,
            )
            for p in backends
        ]
        # warm once, then size the probe and the batches from a warm eager generation
        start = time.perf_counter()
        eager.generate(inputs, tokens, force_length=True)
        eager_seconds = time.perf_counter() - start
        eager_found = [baselines[p.label] for p in backends if p.name == REFERENCE_BACKEND]
        self.probe = self._machine_probe(eager_found[0] if eager_found else None, eager_seconds)
        batch = settings.batch_rounds or (10 if eager_seconds * len(subjects) < 1.0 else 1)
        batch = max(1, min(batch, settings.rounds // MIN_BATCHES))  # at least 3 batches
        plan = Plan(
            batch_rounds=batch,
            max_batches=max(1, settings.rounds // batch),
            backends=len(subjects),
            threshold=settings.threshold,
            alpha=settings.alpha,
        )
        self.latency_plan = plan
        by_label = {p.label: p for p in backends}
        for subject in subjects:
            self.result(subject.label).control = subject.control

        def decide(label: str, series: Any, final: bool) -> bool:
            if settings.update_baselines:
                return False
            prepared, found = by_label[label], baselines[label]
            if isinstance(found, BaselineError):
                verdict = Verdict(
                    label, ERROR, True, plan.threshold, plan.alpha, notes=(str(found),)
                )
            else:
                verdict = self._judge(prepared, series, found, plan, final)
            result = self.result(label)
            result.gate = verdict
            return verdict.final

        campaign = run_campaign(
            subjects,
            {CONTROL_EAGER: generation(eager), CONTROL_PROBE: self.probe.run},
            batch_rounds=plan.batch_rounds,
            looks=plan.looks(),
            decide=decide,
            time_budget_s=settings.time_budget_s,
            warmup=settings.warmup,
            seed=0,
        )
        self.campaign = campaign
        for prepared in backends:
            series = campaign.series[prepared.label]
            result = self.result(prepared.label)
            result.samples_s = series.samples_s
            result.control_samples_s = series.control_samples_s
            result.stages = series.stages
            if settings.update_baselines and prepared.spec.slow == 1.0:
                result.gate = self._store_baseline(prepared, store, plan)
        if settings.update_baselines:  # synthetic slowdowns: judged against what was just written
            for prepared in backends:
                if prepared.spec.slow != 1.0:
                    self._judge_slowed_after_update(prepared, store, plan)

    @cached_property
    def _fingerprint(self) -> str:
        from .machine import fingerprint

        return fingerprint(self.settings.threads)

    @cached_property
    def _model_key(self) -> str:
        from .gate.baselines import model_key

        reference = self.reference
        return model_key(reference.name, reference.source, reference.weights_hash)

    def _machine_probe(self, found: Any, eager_seconds: float) -> Any:
        """The probe eager fp32 is timed against: the size its baseline was recorded with, or
        about half a warm eager generation."""
        from .probe import MachineProbe

        baseline = getattr(found, "baseline", None)
        if baseline is not None and baseline.probe_repeats:
            return MachineProbe(baseline.probe_repeats)
        return MachineProbe.sized_like(eager_seconds)

    def latency_baseline(self, prepared: PreparedBackend) -> Baseline:
        """This run's latency of a backend, in the form the baseline store keeps."""
        from .gate.baselines import Baseline, now_iso
        from .machine import environment_id, fingerprint_facts, library_versions

        settings, reference = self.settings, self.reference
        result = self.result(prepared.label)
        is_reference = prepared.name == REFERENCE_BACKEND
        return Baseline(
            backend=prepared.label,
            model=self._model_key,
            fingerprint=self._fingerprint,
            samples_s=tuple(result.samples_s),
            control_samples_s=tuple(result.control_samples_s),
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
            control=result.control,
            probe_repeats=self.probe.repeats if is_reference else None,
            environment=environment_id(),
        )

    def _judge(
        self, prepared: PreparedBackend, series: Any, found: Any, plan: Any, final: bool
    ) -> Verdict:
        from dataclasses import replace

        from .gate.decision import Timings, judge
        from .machine import environment_id

        settings = self.settings
        current = Timings(
            series.samples_s,
            series.control_samples_s,
            self._fingerprint,
            settings.max_new_tokens,
            environment=environment_id(),
            control=self.result(prepared.label).control,
        )
        verdict = judge(
            prepared.label,
            current,
            found.baseline.timings() if found.baseline else None,
            replace(plan, threshold=settings.threshold_for(prepared.name)),
            final=final,
            missing=settings.missing_baseline,
            unknown=settings.unknown,
            fail_on_improvement=settings.fail_on_improvement,
            baseline_path=str(found.path) if found.path else None,
        )
        if found.other_threads:
            listed = ", ".join(f"--cxr-threads={t}" for t in found.other_threads)
            hint = f"baselines of {prepared.name} exist for {listed} only"
            verdict = replace(verdict, notes=(*verdict.notes, hint))
        return verdict

    def _store_baseline(self, prepared: PreparedBackend, store: Any, plan: Any) -> Verdict:
        """``--cxr-update-baselines``: write this run's rounds as the backend's baseline (the
        caller skips synthetic slowdowns: they are judged against the base backend's)."""
        from dataclasses import replace

        from .gate.baselines import BaselineError
        from .gate.decision import ERROR, UPDATED, Verdict, judge

        label = prepared.label
        threshold = self.settings.threshold_for(prepared.name)
        try:
            record = self.latency_baseline(prepared)
            before, path = store.write(record)
        except BaselineError as exc:
            return Verdict(label, ERROR, True, threshold, plan.alpha, notes=(str(exc),))
        if before is None:
            return Verdict(
                label, UPDATED, False, threshold, plan.alpha, str(path), notes=("new baseline",)
            )
        compared = judge(
            label, record.timings(), before.timings(), replace(plan, threshold=threshold)
        )
        notes = (f"replaced the baseline of {before.created}",)
        return replace(compared, status=UPDATED, failed=False, baseline_path=str(path), notes=notes)

    def _judge_slowed_after_update(self, prepared: PreparedBackend, store: Any, plan: Any) -> None:
        from dataclasses import replace

        from .gate.baselines import BaselineError
        from .gate.decision import ERROR, Verdict

        result = self.result(prepared.label)
        series = self.campaign.series[prepared.label]
        note = "a synthetic slowdown is never stored as a baseline; judged against the new one"
        try:
            found = store.find(
                self._fingerprint, self._model_key, prepared.name, threads=self.settings.threads
            )
        except BaselineError as exc:
            result.gate = Verdict(prepared.label, ERROR, True, notes=(str(exc), note))
            return
        verdict = self._judge(prepared, series, found, plan, final=True)
        result.gate = replace(verdict, notes=(*verdict.notes, note))

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
