"""The throughput gate of a run: each backend's worklist with ``--cxr-concurrency`` studies in
flight, timed in one interleaved campaign against the in-run eager fp32 control, judged like
latency against a baseline of this machine class (or stored, with ``--cxr-update-baselines``).

Per backend, before any timing: the batched reports of the run's studies are compared with the
same backend's single-study reports and with the eager fp32 reference (token ids within the
precision's tie margin, and the clinical findings), so padding or a shared cache cannot change
what a study says unnoticed. The peak memory of one worklist is sampled apart from the timed
rounds.

Each round times, in a fresh random order, every undecided backend's worklist at the concurrency,
the same worklist one study at a time (what batching buys, reported beside) and the control (one
eager fp32 generation of the first study, as in the latency campaign). The gate judges the
worklist's seconds over the control's, through the latency gate's statistics
(:func:`~.judge.judge`): an in-run control, interleaving, a three-way verdict, more rounds when
unclear. Baselines are plain latency-baseline files whose backend is
:func:`throughput_key` (``eager.throughput-c4-w8``): another concurrency or worklist is another
baseline, never compared.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..settings import BackendSpec
from .baselines import Baseline, BaselineError, BaselineStore, now_iso
from .decision import CONTROL_EAGER, REFERENCE_BACKEND, Verdict
from .plan import Plan

if TYPE_CHECKING:
    from ..backends.batching import BatchRun
    from ..model.processor import ModelInputs
    from ..results import RunResults
    from ..session import CxrSession, PreparedBackend
    from ..throughput import ThroughputFigures

MEASURE = "throughput"  # what its verdicts gate (:attr:`~.decision.Verdict.measure`)
BATCHED = " throughput"  # suffix of the campaign's subject that runs the worklist batched
SEQUENTIAL = " one at a time"  # suffix of the subject that runs the worklist sequentially


def throughput_key(name: str, concurrency: int, worklist: int) -> str:
    """The baseline store's name for a backend's throughput at these settings."""
    return f"{name}.throughput-c{concurrency}-w{worklist}"


def throughput_of(
    session: CxrSession, results: RunResults, prepared: PreparedBackend
) -> ThroughputFigures:
    """A backend's measured and judged throughput. The first call runs the campaign for every
    backend whose throughput test was collected (``session.collected.throughput``); later calls
    read its results."""
    from .latency import record_prepared

    if session.starts_campaign("throughput"):
        specs = list(session.collected.throughput) or [prepared.spec]
        if prepared.spec not in specs:
            specs.append(prepared.spec)
        run_throughput_gate(session, results, [record_prepared(session, results, s) for s in specs])
    figures = results.backend(prepared.label).throughput
    if figures is None:  # collected after the campaign ran (not expected)
        run_throughput_gate(session, results, [prepared])
        figures = results.backend(prepared.label).throughput
    assert figures is not None
    return figures


def worklist_inputs(session: CxrSession) -> list[ModelInputs]:
    """The run's studies repeated to ``--cxr-worklist``, each repetition shuffled (seeded)."""
    from ..throughput import worklist

    studies = session.studies
    order = worklist(len(studies), session.settings.worklist, seed=0)
    return [session.inputs(studies[i]) for i in order]


def batched_equivalence(
    session: CxrSession, prepared: PreparedBackend
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every study's report from a batched run of the worklist against the same backend alone and
    against eager fp32 (study -> check -> ``{"ok", "message"}``)."""
    from ..backends.batching import run_batched
    from .equivalence import clinical_check, compare_tokens, tolerances_for

    settings = session.settings
    tokens = settings.max_new_tokens
    items = worklist_inputs(session)
    run = run_batched(prepared.runner, items, settings.concurrency, tokens, return_logits=True)
    tie = tolerances_for(prepared.precision, prepared.name, settings.tolerances).tie_margin
    by_name = {s.name: s for s in session.studies}
    checks: dict[str, dict[str, dict[str, Any]]] = {}
    for inputs, batched in zip(items, run.outputs, strict=True):
        if inputs.study_name in checks:  # a repetition: the first occurrence is checked
            continue
        alone = prepared.runner.generate(inputs, tokens, return_logits=True)
        reference = session.reference_output(by_name[inputs.study_name]).generation
        assert alone.step_logits is not None and reference.step_logits is not None
        single = compare_tokens(alone.token_ids, batched.token_ids, alone.step_logits, tie)
        eager = compare_tokens(reference.token_ids, batched.token_ids, reference.step_logits, tie)
        clinical = clinical_check(reference.text, batched.text, "the eager fp32 reference")
        checks[inputs.study_name] = {
            "batched_vs_single": {
                "ok": single.ok,
                "message": f"against {prepared.label} alone: {single.message}",
            },
            "batched_vs_reference": {
                "ok": eager.ok,
                "message": f"against eager fp32: {eager.message}",
            },
            "clinical_findings": {"ok": clinical["ok"], "message": clinical["message"]},
        }
    return checks


def run_throughput_gate(
    session: CxrSession, results: RunResults, backends: list[PreparedBackend]
) -> None:
    """Check, sample and time ``backends``' worklists in one interleaved campaign; put each
    one's :class:`~pytest_cxrperf.throughput.ThroughputFigures` into ``results``."""
    from ..backends.batching import batch_mode, run_batched
    from ..latency import Subject, run_campaign
    from ..memory import sampled
    from ..pressure import stalled_seconds
    from ..simulated import SimulatedTimings
    from ..throughput import ThroughputFigures

    settings = session.settings
    tokens, concurrency = settings.max_new_tokens, settings.concurrency
    items = worklist_inputs(session)
    store = BaselineStore(settings.baseline_dir)
    figures: dict[str, ThroughputFigures] = {}
    found: dict[str, Any] = {}
    for prepared in backends:
        figure = ThroughputFigures(
            concurrency=concurrency,
            worklist=len(items),
            mode=batch_mode(prepared.runner),
            cost_per_hour=settings.cost_per_hour,
        )
        figure.equivalence = batched_equivalence(session, prepared)
        runner = prepared.runner
        run, peak = sampled(
            lambda r=runner: run_batched(r, items, concurrency, tokens, force_length=True)  # type: ignore[misc]
        )
        figure.tokens = run.tokens
        figure.peak_memory_mib = round(peak.delta_mib, 1) if peak is not None else None
        figures[prepared.label] = figure
        results.backend(prepared.label).throughput = figure
        key = throughput_key(prepared.name, concurrency, len(items))
        try:
            found[prepared.label] = store.find(
                session.machine_class, session.model_key, key, session.legacy_fingerprint
            )
        except BaselineError as exc:
            found[prepared.label] = exc

    simulated = SimulatedTimings.from_env()  # the gate tested without the clock (tests only)
    if simulated is not None:
        results.notice(simulated.notice())

    def worklist_run(prepared: PreparedBackend, level: int, subject: str) -> Any:
        def run() -> BatchRun:
            return run_batched(prepared.runner, items, level, tokens, force_length=True)

        if simulated is None:
            return run
        name = subject.replace(prepared.label, prepared.name, 1)
        return simulated.timed(run, subject, name, prepared.spec.slow)

    # subjects are named apart from the backends: the campaign shares a control's rounds with a
    # subject of the control's name (eager), and eager's worklist is not its own control
    batched_of = {p.label: p.label + BATCHED for p in backends}
    sequential_of = {p.label: p.label + SEQUENTIAL for p in backends}
    subjects = [
        Subject(
            batched_of[p.label], worklist_run(p, concurrency, batched_of[p.label]), CONTROL_EAGER
        )
        for p in backends
    ]
    subjects += [
        Subject(sequential_of[p.label], worklist_run(p, 1, sequential_of[p.label]), CONTROL_EAGER)
        for p in backends
    ]
    eager = session.prepared(BackendSpec(REFERENCE_BACKEND)).runner
    first = session.inputs(session.studies[0])

    def control() -> Any:
        return eager.generate(first, tokens, force_length=True).timings

    controls = {
        CONTROL_EAGER: simulated.timed(control, REFERENCE_BACKEND, REFERENCE_BACKEND, control=True)
        if simulated is not None
        else control
    }
    plan = Plan(
        batch_rounds=1,
        max_batches=settings.throughput_rounds,
        backends=len(backends),
        threshold=settings.threshold,
        alpha=settings.alpha,
        session_noise=settings.session_noise,
    )
    by_label = {p.label: p for p in backends}
    decided: dict[str, bool] = {}

    def decide(subject: str, series: Any, final: bool) -> bool:
        if subject.endswith(SEQUENTIAL):  # leaves with its backend
            return decided.get(subject[: -len(SEQUENTIAL)], final)
        label = subject[: -len(BATCHED)]
        if settings.update_baselines:
            decided[label] = final
            return final
        figure = figures[label]
        figure.gate = judge_throughput(session, by_label[label], series, found[label], plan, final)
        decided[label] = figure.gate.final
        return figure.gate.final

    campaign = run_campaign(
        subjects,
        controls,
        batch_rounds=plan.batch_rounds,
        looks=plan.looks(),
        decide=decide,
        time_budget_s=settings.time_budget_s,
        warmup=settings.warmup,
        seed=1,
        clock=simulated.clock if simulated is not None else time.perf_counter,
        stalled=simulated.stalled_seconds if simulated is not None else stalled_seconds,
    )
    for prepared in backends:
        figure = figures[prepared.label]
        series = campaign.series[batched_of[prepared.label]]
        sequential = campaign.series[sequential_of[prepared.label]]
        figure.samples_s = series.samples_s
        figure.control_samples_s = series.control_samples_s
        figure.sequential_samples_s = sequential.samples_s
        figure.latencies_s = list(_median_run(series.samples_s, series.stages).latencies_s)
        figure.sequential_latencies_s = list(
            _median_run(sequential.samples_s, sequential.stages).latencies_s
        )
        if settings.update_baselines and prepared.spec.slow == 1.0:
            record = baseline_of(session, prepared, figure, series.pressure)
            figure.gate = store_throughput_baseline(record, store, plan)
        elif settings.update_baselines:  # a synthetic slowdown: judged against what was written
            key = throughput_key(prepared.name, concurrency, len(items))
            written: Any
            try:
                written = store.find(session.machine_class, session.model_key, key)
            except BaselineError as exc:
                written = exc
            figure.gate = judge_throughput(session, prepared, series, written, plan, True)


def _median_run(samples_s: list[float], runs: list[BatchRun]) -> BatchRun:
    """The round whose worklist took the median time (its latencies are the ones reported)."""
    ranked = sorted(range(len(samples_s)), key=samples_s.__getitem__)
    return runs[ranked[len(ranked) // 2]]


def judge_throughput(
    session: CxrSession,
    prepared: PreparedBackend,
    series: Any,
    found: Any,
    plan: Plan,
    final: bool,
) -> Verdict:
    """One look at a backend's worklist rounds against its stored throughput baseline: the
    latency gate's judgement, against the eager fp32 control, labelled throughput."""
    from .latency import judge_series

    return judge_series(
        session, prepared, series, found, plan, final, control=CONTROL_EAGER, measure=MEASURE
    )


def baseline_of(
    session: CxrSession,
    prepared: PreparedBackend,
    figure: ThroughputFigures,
    pressure: list[float],
) -> Baseline:
    """This run's worklist rounds of a backend, in the form the baseline store keeps."""
    from ..machine import environment_id, legacy_fingerprint_facts, library_versions

    settings = session.settings
    return Baseline(
        backend=throughput_key(prepared.name, figure.concurrency, figure.worklist),
        model=session.model_key,
        fingerprint=session.fingerprint,
        samples_s=tuple(figure.samples_s),
        control_samples_s=tuple(figure.control_samples_s),
        new_tokens=settings.max_new_tokens,
        threads=settings.threads,
        rounds=len(figure.samples_s),
        warmup=settings.warmup,
        precision=prepared.precision,
        created=now_iso(),
        machine=legacy_fingerprint_facts(settings.threads),
        machine_class=session.machine_class.to_dict(),
        libraries=library_versions(),
        model_info={
            **session.reference.describe(),
            "throughput": {
                "concurrency": figure.concurrency,
                "worklist": figure.worklist,
                "mode": figure.mode,
                "studies_per_hour": figure.studies_per_hour,
            },
        },
        control=CONTROL_EAGER,
        environment=environment_id(),
        pressure=tuple(pressure) if len(pressure) == len(figure.samples_s) else (),
        memory_mib={"throughput": figure.peak_memory_mib} if figure.peak_memory_mib else {},
    )


def store_throughput_baseline(record: Baseline, store: BaselineStore, plan: Plan) -> Verdict:
    """``--cxr-update-baselines``: write the worklist rounds as the throughput baseline (the
    latency gate's writer; the verdict names the backend and says it gates throughput)."""
    from .latency import store_baseline

    verdict = store_baseline(record, store, plan, plan.threshold)
    return replace(verdict, backend=record.backend.partition(".throughput")[0], measure=MEASURE)
