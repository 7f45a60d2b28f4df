"""The latency gate of a run: time every collected backend in one campaign, then judge each
against its stored baseline (or store this run's rounds, with ``--cxr-update-baselines``).

record (:func:`pytest_cxrperf.latency.run_campaign`) -> find or write (:mod:`.baselines`) ->
:class:`~.decision.Verdict`. The session supplies cached models, inputs and prepared runners;
what is found goes into :class:`~pytest_cxrperf.results.RunResults`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..settings import BackendSpec
from .baselines import Baseline, BaselineError, BaselineStore, now_iso
from .decision import (
    CONTROL_EAGER,
    CONTROL_PROBE,
    ERROR,
    REFERENCE_BACKEND,
    UPDATED,
    Timings,
    Verdict,
)
from .judge import judge
from .plan import MIN_BATCHES, Plan

if TYPE_CHECKING:
    from ..backends.base import Runner
    from ..probe import MachineProbe
    from ..results import BackendResult, MemoryFigures, RunResults
    from ..session import CxrSession, PreparedBackend


def latency_of(
    session: CxrSession, results: RunResults, prepared: PreparedBackend
) -> BackendResult:
    """A backend's measured and judged latency. The first call runs the campaign for every
    backend whose latency test was collected (``session.collected.latency``), interleaved;
    later calls read its results."""
    if session.starts_campaign("latency"):
        specs = list(session.collected.latency) or [prepared.spec]
        if prepared.spec not in specs:
            specs.append(prepared.spec)
        run_latency_gate(session, results, [record_prepared(session, results, s) for s in specs])
    result = results.backend(prepared.label)
    if result.gate is None:  # collected after the campaign ran (not expected)
        run_latency_gate(session, results, [prepared])
    return result


def record_prepared(session: CxrSession, results: RunResults, spec: BackendSpec) -> PreparedBackend:
    """A backend selected for this run: prepared once (cached by the session), and given its row
    in the results (the eager control and reference outputs are prepared without one)."""
    prepared = session.prepared(spec)
    result = results.backend(spec.label)
    result.precision = prepared.precision
    result.prepare_seconds = prepared.prepare_seconds
    result.prepare_details = dict(prepared.backend.prepare_info.details)
    if result.memory is None:
        result.memory = memory_of(prepared)
    for notice in session.notices:
        results.notice(notice)
    return prepared


def run_latency_gate(
    session: CxrSession, results: RunResults, backends: list[PreparedBackend]
) -> None:
    """Time ``backends`` in one interleaved campaign and put each one's rounds and verdict into
    ``results``."""
    from ..latency import Subject, run_campaign
    from ..pressure import stalled_seconds
    from ..results import CampaignSummary
    from ..simulated import SimulatedTimings

    settings = session.settings
    simulated = SimulatedTimings.from_env()
    if simulated is not None:
        results.notice(simulated.notice())
    inputs = session.inputs(session.studies[0])
    tokens = settings.max_new_tokens
    store = BaselineStore(settings.baseline_dir)
    baselines: dict[str, Any] = {}
    for prepared in backends:
        try:
            baselines[prepared.label] = store.find(
                session.machine_class, session.model_key, prepared.name, session.legacy_fingerprint
            )
        except BaselineError as exc:
            baselines[prepared.label] = exc

    def generation(runner: Runner) -> Any:
        return lambda: runner.generate(inputs, tokens, force_length=True).timings

    def timed(run: Any, label: str, name: str, slow: float = 1.0, control: bool = False) -> Any:
        """The campaign's call: real, or on the simulated clock (:mod:`..simulated`)."""
        return simulated.timed(run, label, name, slow, control) if simulated else run

    eager = session.prepared(BackendSpec(REFERENCE_BACKEND)).runner
    subjects = [
        Subject(
            p.label,
            timed(generation(p.runner), p.label, p.name, p.spec.slow),
            CONTROL_PROBE if p.name == REFERENCE_BACKEND else CONTROL_EAGER,
        )
        for p in backends
    ]
    # warm once, then size the probe and the batches from a warm eager generation
    start = time.perf_counter()
    eager.generate(inputs, tokens, force_length=True)
    eager_seconds = time.perf_counter() - start
    eager_found = [baselines[p.label] for p in backends if p.name == REFERENCE_BACKEND]
    probe = machine_probe(eager_found[0] if eager_found else None, eager_seconds)
    batch = settings.batch_rounds or (10 if eager_seconds * len(subjects) < 1.0 else 1)
    batch = max(1, min(batch, settings.rounds // MIN_BATCHES))  # at least 3 batches
    plan = Plan(
        batch_rounds=batch,
        max_batches=max(1, settings.rounds // batch),
        backends=len(subjects),
        threshold=settings.threshold,
        alpha=settings.alpha,
        session_noise=settings.session_noise,
    )
    by_label = {p.label: p for p in backends}
    for subject in subjects:
        results.backend(subject.label).control = subject.control

    def saving(label: str) -> bool:
        """Measured to the cap to be saved as a candidate baseline (--cxr-save-missing)."""
        found = baselines[label]
        return (
            settings.save_missing_dir is not None
            and not isinstance(found, BaselineError)
            and found.baseline is None
            and by_label[label].spec.slow == 1.0
        )

    def decide(label: str, series: Any, final: bool) -> bool:
        if settings.update_baselines:
            return False
        verdict = judge_series(session, by_label[label], series, baselines[label], plan, final)
        results.backend(label).gate = verdict
        return verdict.final and (final or not saving(label))

    controls = {
        CONTROL_EAGER: timed(generation(eager), REFERENCE_BACKEND, REFERENCE_BACKEND, control=True),
        CONTROL_PROBE: timed(probe.run, CONTROL_PROBE, CONTROL_PROBE, control=True),
    }
    campaign = run_campaign(
        subjects,
        controls,
        batch_rounds=plan.batch_rounds,
        looks=plan.looks(),
        decide=decide,
        time_budget_s=settings.time_budget_s,
        warmup=settings.warmup,
        seed=0,
        clock=simulated.clock if simulated else time.perf_counter,
        stalled=simulated.stalled_seconds if simulated else stalled_seconds,
    )
    results.campaign = CampaignSummary(
        rounds=campaign.rounds,
        seconds=campaign.seconds,
        stopped=campaign.stopped,
        looks=campaign.looks,
        batch_rounds=plan.batch_rounds,
        max_rounds=plan.max_batches * plan.batch_rounds,
        probe_repeats=probe.repeats,
    )
    for prepared in backends:
        series = campaign.series[prepared.label]
        result = results.backend(prepared.label)
        result.samples_s = series.samples_s
        result.control_samples_s = series.control_samples_s
        result.stages = series.stages
        result.pressure = series.pressure
        if not settings.update_baselines:
            result.memory_gate = judge_memory_of(
                session, result, prepared, baselines[prepared.label]
            )
        if settings.update_baselines and prepared.spec.slow == 1.0:
            record = baseline_of(session, result, prepared, probe)
            result.gate = store_baseline(record, store, plan, settings.threshold_for(prepared.name))
        elif saving(prepared.label):
            save_candidate(session, results, prepared, probe)
    if settings.update_baselines:  # synthetic slowdowns: judged against what was just written
        for prepared in backends:
            if prepared.spec.slow != 1.0:
                judge_slowed_after_update(session, results, prepared, campaign, store, plan)


def save_candidate(
    session: CxrSession, results: RunResults, prepared: PreparedBackend, probe: MachineProbe
) -> None:
    """``--cxr-save-missing``: what this run would record for a backend with no baseline for its
    machine class, written to a store of its own for review (never into the gate's store)."""
    settings = session.settings
    assert settings.save_missing_dir is not None
    result = results.backend(prepared.label)
    record = baseline_of(session, result, prepared, probe)
    try:
        _, path = BaselineStore(settings.save_missing_dir).write(record)
    except BaselineError as exc:
        results.notice(f"{prepared.label}: candidate baseline not saved: {exc}")
        return
    if result.gate is not None:
        note = (
            f"candidate baseline for machine class {session.fingerprint} saved to {path} "
            f"({len(record.samples_s)} rounds): review it, then copy it into "
            f"{settings.baseline_dir}/{record.relpath.as_posix()}"
        )
        result.gate = replace(result.gate, notes=(*result.gate.notes, note))


def memory_of(prepared: PreparedBackend) -> MemoryFigures | None:
    """The backend's peaks, sampled while it was prepared and over its first generation."""
    from ..results import MemoryFigures

    prepare, first = prepared.prepare_memory, prepared.generate_memory
    if prepare is None and first is None:
        return None
    peaks = [p for p in (prepare, first) if p is not None]
    return MemoryFigures(
        prepare_peak_mib=prepare.delta_mib if prepare else None,
        generate_peak_mib=first.delta_mib if first else None,
        rss_peak_mib=max(p.peak_rss_mib for p in peaks),
        available_drop_mib=max(p.available_drop_mib for p in peaks),
        sample_hz=min(p.hz for p in peaks),
        context=prepared.memory_context,
    )


def judge_memory_of(
    session: CxrSession, result: BackendResult, prepared: PreparedBackend, found: Any
) -> Verdict | None:
    """The memory verdict: this run's peaks against the baseline's (None where none measured)."""
    from .memory import judge_memory, memory_figures

    if result.memory is None or isinstance(found, BaselineError):
        return None
    current = memory_figures(result.memory.prepare_peak_mib, result.memory.generate_peak_mib)
    stored = found.baseline
    return judge_memory(
        prepared.label,
        current,
        stored.memory_mib if stored is not None else None,
        session.settings.threshold_for(prepared.name),
        baseline_path=str(found.path) if found.path else None,
        missing=session.settings.missing_baseline,
        context=(result.memory.context, stored.memory_context if stored is not None else ()),
        missing_note=found.missing_hint(session.fingerprint) if stored is None else None,
    )


def machine_probe(found: Any, eager_seconds: float) -> MachineProbe:
    """The probe eager fp32 is timed against: the size its baseline was recorded with, or about
    half a warm eager generation."""
    from ..probe import MachineProbe

    baseline = getattr(found, "baseline", None)
    if baseline is not None and baseline.probe_repeats:
        return MachineProbe(baseline.probe_repeats)
    return MachineProbe.sized_like(eager_seconds)


def baseline_of(
    session: CxrSession, result: BackendResult, prepared: PreparedBackend, probe: MachineProbe
) -> Baseline:
    """This run's latency of a backend, in the form the baseline store keeps."""
    from ..backends.timings import stage_medians
    from ..machine import environment_id, legacy_fingerprint_facts, library_versions
    from .memory import memory_figures

    settings, reference = session.settings, session.reference
    return Baseline(
        backend=prepared.label,
        model=session.model_key,
        fingerprint=session.fingerprint,
        samples_s=tuple(result.samples_s),
        control_samples_s=tuple(result.control_samples_s),
        new_tokens=settings.max_new_tokens,
        threads=settings.threads,
        rounds=len(result.samples_s),
        warmup=settings.warmup,
        precision=prepared.precision,
        created=now_iso(),
        machine=legacy_fingerprint_facts(settings.threads),
        machine_class=session.machine_class.to_dict(),
        libraries=library_versions(),
        stage_medians_s=stage_medians(result.stages),
        model_info=reference.describe(),
        control=result.control,
        probe_repeats=probe.repeats if prepared.name == REFERENCE_BACKEND else None,
        environment=environment_id(),
        pressure=tuple(result.pressure) if len(result.pressure) == len(result.samples_s) else (),
        memory_mib=memory_figures(
            result.memory.prepare_peak_mib if result.memory else None,
            result.memory.generate_peak_mib if result.memory else None,
        ),
        memory_context=result.memory.context if result.memory else (),
    )


def judge_series(
    session: CxrSession,
    prepared: PreparedBackend,
    series: Any,
    found: Any,
    plan: Plan,
    final: bool,
    control: str | None = None,
    measure: str = "latency",
) -> Verdict:
    """One look at one backend's rounds so far against its stored baseline (``found``: what the
    store found, or the :class:`BaselineError` it raised). ``control`` defaults to the latency
    campaign's (the machine probe for eager fp32, eager fp32 for the rest); ``measure`` names
    what the rounds time (the throughput gate judges worklist rounds the same way)."""
    from ..machine import environment_id

    if isinstance(found, BaselineError):
        return Verdict(
            prepared.label,
            ERROR,
            True,
            plan.threshold,
            plan.alpha,
            notes=(str(found),),
            measure=measure,
        )
    settings = session.settings
    if control is None:
        control = CONTROL_PROBE if prepared.name == REFERENCE_BACKEND else CONTROL_EAGER
    current = Timings(
        series.samples_s,
        series.control_samples_s,
        session.fingerprint,
        settings.max_new_tokens,
        environment=environment_id(),
        control=control,
        pressure=series.pressure,
    )
    stored = found.baseline.timings() if found.baseline else None
    if stored is not None and found.baseline is not None and found.baseline.legacy:
        # a pre-class file of this host (the store checked): its class is this one
        stored = replace(stored, fingerprint=current.fingerprint)
    verdict = judge(
        prepared.label,
        current,
        stored,
        replace(plan, threshold=settings.threshold_for(prepared.name)),
        final=final,
        missing=settings.missing_baseline,
        unknown=settings.unknown,
        fail_on_improvement=settings.fail_on_improvement,
        baseline_path=str(found.path) if found.path else None,
        missing_hint=found.missing_hint(session.fingerprint) if found.baseline is None else None,
    )
    if found.note:
        verdict = replace(verdict, notes=(*verdict.notes, found.note))
    return replace(verdict, measure=measure)


def store_baseline(record: Baseline, store: BaselineStore, plan: Plan, threshold: float) -> Verdict:
    """``--cxr-update-baselines``: write this run's rounds as the backend's baseline; the verdict
    says what it replaced (the caller skips synthetic slowdowns: they are never stored)."""
    label = record.backend
    try:
        before, path = store.write(record)
    except BaselineError as exc:
        return Verdict(label, ERROR, True, threshold, plan.alpha, notes=(str(exc),))
    if before is None:
        return Verdict(
            label, UPDATED, False, threshold, plan.alpha, str(path), notes=("new baseline",)
        )
    compared = judge(label, record.timings(), before.timings(), replace(plan, threshold=threshold))
    notes = (f"replaced the baseline of {before.created}",)
    return replace(compared, status=UPDATED, failed=False, baseline_path=str(path), notes=notes)


def judge_slowed_after_update(
    session: CxrSession,
    results: RunResults,
    prepared: PreparedBackend,
    campaign: Any,
    store: BaselineStore,
    plan: Plan,
) -> None:
    """A synthetic slowdown in an updating run: judged against the baseline just written."""
    result = results.backend(prepared.label)
    series = campaign.series[prepared.label]
    note = "a synthetic slowdown is never stored as a baseline; judged against the new one"
    try:
        found = store.find(
            session.machine_class, session.model_key, prepared.name, session.legacy_fingerprint
        )
    except BaselineError as exc:
        result.gate = Verdict(prepared.label, ERROR, True, notes=(str(exc), note))
        return
    verdict = judge_series(session, prepared, series, found, plan, final=True)
    result.gate = replace(verdict, notes=(*verdict.notes, note))
