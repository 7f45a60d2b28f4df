"""RunResults: everything a run found, in one typed, serializable, mergeable value.

Built once per pytest process (``config.stash``) and filled by the measuring, gating and
equivalence code; every writer (terminal table, JSON) and the ``cxrperf`` command read it, and
under pytest-xdist each worker sends its own to the controller, which merges them. The JSON form
is the ``--cxr-json`` report (schema 1: the keys earlier releases wrote are all still there;
derived figures such as ``mean_s`` are written for readers and recomputed, not read back).

No torch, no pytest: a controller, a merge or a report reads results without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .backends.registry import REFERENCE_BACKEND
from .backends.timings import StageTimings, stage_medians
from .errors import CxrPerfError
from .gate.decision import CONTROL_EAGER, Verdict
from .gate.stats import Summary
from .machine import machine_info
from .throughput import ThroughputFigures

if TYPE_CHECKING:
    from .memory import Peak
    from .model.loader import ReferenceModel
    from .model.study_record import Study
    from .settings import Settings

SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """Results that cannot be read or merged (an unknown schema, two runs of one backend)."""


class SessionCaches(Protocol):
    """What the results take from the run's caches at its end (:meth:`RunResults.record_session`,
    :meth:`RunResults.record_studies`). :class:`~pytest_cxrperf.session.CxrSession` is one; a
    protocol, so that the results do not depend on the session module."""

    settings: Settings
    model_load_seconds: float | None
    model_load_memory: Peak | None

    @property
    def reference_loaded(self) -> ReferenceModel | None: ...

    @property
    def timed_cost(self) -> dict[str, float]: ...

    @property
    def notices(self) -> list[str]: ...

    @property
    def studies(self) -> list[Study]: ...


@dataclass
class MemoryFigures:
    """Peak memory of one backend, sampled by a separate process in rounds apart from the timed
    ones. Deltas are over the process's resident set just before the step, so they belong to
    this backend even though every backend lives in one process; ``available_drop_mib`` is the
    fall of the system's MemAvailable, which also counts memory-mapped files (OpenVINO IR) that
    RSS may not show as this process's."""

    prepare_peak_mib: float | None = None  # preparation (export, compile, load): peak RSS - before
    generate_peak_mib: float | None = None  # one generation: peak RSS - before
    rss_peak_mib: float | None = None  # the process's peak RSS while generating
    available_drop_mib: float | None = None  # largest MemAvailable fall over prepare + generate
    sample_hz: float | None = None  # achieved sampling rate
    context: tuple[str, ...] = ()  # backends prepared before this one in the process, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "prepare_peak_mib": self.prepare_peak_mib,
            "generate_peak_mib": self.generate_peak_mib,
            "rss_peak_mib": self.rss_peak_mib,
            "available_drop_mib": self.available_drop_mib,
            "sample_hz": self.sample_hz,
            "context": list(self.context),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryFigures:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            prepare_peak_mib=number("prepare_peak_mib"),
            generate_peak_mib=number("generate_peak_mib"),
            rss_peak_mib=number("rss_peak_mib"),
            available_drop_mib=number("available_drop_mib"),
            sample_hz=number("sample_hz"),
            context=tuple(str(c) for c in data.get("context") or ()),
        )


@dataclass
class RooflineBasis:
    """What a run's roofline fractions were measured against, or why it has none.

    Kept apart from each backend's fractions so that a report can say, once per run, which
    ceilings (and which machine, thread count) the percentages are of; and so that a missing
    column explains itself instead of silently disappearing."""

    ceilings: dict[str, Any] | None = None  # :meth:`Ceilings.to_dict` of this machine, or None
    source: str = ""  # "cached", or how they were measured in this run
    note: str = ""  # why fractions are missing and what to do (empty when all is well)

    def to_dict(self) -> dict[str, Any]:
        return {"ceilings": self.ceilings, "source": self.source, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RooflineBasis:
        ceilings = data.get("ceilings")
        return cls(
            ceilings=dict(ceilings) if ceilings else None,
            source=str(data.get("source") or ""),
            note=str(data.get("note") or ""),
        )


@dataclass
class BackendResult:
    """One backend's row: latency rounds (and its control's), verdict, equivalence, outputs."""

    label: str
    precision: str = ""
    samples_s: list[float] = field(default_factory=list)
    stages: list[StageTimings] = field(default_factory=list)
    control_samples_s: list[float] = field(default_factory=list)
    # per round, the share in which a runnable task waited for a CPU (empty: not measured)
    pressure: list[float] = field(default_factory=list)
    prepare_seconds: float | None = None
    prepare_details: dict[str, Any] = field(default_factory=dict)
    equivalence: dict[str, dict[str, Any]] = field(default_factory=dict)  # study -> check -> data
    outputs: dict[str, str] = field(default_factory=dict)  # study -> generated text
    gate: Verdict | None = None  # the latency gate's verdict
    control: str = CONTROL_EAGER  # what control_samples_s timed: "eager", or "probe" for eager
    memory: MemoryFigures | None = None
    memory_gate: Verdict | None = None  # peak generation memory against the baseline's
    # stage -> achieved, ceiling, ceiling_name, unit, fraction (:func:`roofline_fractions`);
    # filled once per run by the process that writes the reports
    roofline: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the throughput test's figures (a worklist with several studies in flight), when it ran
    throughput: ThroughputFigures | None = None

    # ---- derived ---------------------------------------------------------------------------
    def equivalence_failures(self) -> list[str]:
        return [
            f"{study}: {check}"
            for study, checks in sorted(self.equivalence.items())
            for check, data in sorted(checks.items())
            if not data["ok"]
        ]

    @property
    def summary(self) -> Summary | None:
        return Summary.of(self.samples_s) if self.samples_s else None

    def speedup_vs_eager(self) -> float | None:
        """Median of the interleaved eager control over the backend's median (higher is faster);
        1 for eager fp32 itself, None where the control was the machine probe."""
        if not self.control_samples_s or not self.samples_s:
            return None
        if self.control != CONTROL_EAGER:
            return 1.0 if self.label == REFERENCE_BACKEND else None
        return Summary.of(self.control_samples_s).median / Summary.of(self.samples_s).median

    @property
    def failed(self) -> bool:
        gates = (self.gate, self.memory_gate)
        if self.throughput is not None and self.throughput.failed:
            return True
        return bool(self.equivalence_failures()) or any(g is not None and g.failed for g in gates)

    # ---- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"precision": self.precision}
        summary = self.summary
        if summary is not None:
            entry.update(
                rounds=summary.n,
                samples_s=list(self.samples_s),
                mean_s=summary.mean,
                stdev_s=summary.stdev,
                median_s=summary.median,
                control_samples_s=list(self.control_samples_s),
                pressure=list(self.pressure),
                control=self.control,
                speedup_vs_eager=self.speedup_vs_eager(),
                stage_medians_s=stage_medians(self.stages),
                stages=[s.raw() for s in self.stages],
            )
        entry["prepare_s"] = self.prepare_seconds
        entry["prepare_details"] = self.prepare_details
        entry["equivalence"] = self.equivalence
        entry["equivalence_ok"] = (not self.equivalence_failures()) if self.equivalence else None
        entry["outputs"] = self.outputs
        entry["latency_gate"] = self.gate.as_dict() if self.gate is not None else None
        entry["memory"] = self.memory.to_dict() if self.memory is not None else None
        entry["memory_gate"] = self.memory_gate.as_dict() if self.memory_gate is not None else None
        if self.roofline:  # optional: results of earlier releases have no such key
            entry["roofline"] = self.roofline
        if self.throughput is not None:  # optional: only where the throughput test ran
            entry["throughput"] = self.throughput.to_dict()
        return entry

    @classmethod
    def from_dict(cls, label: str, data: dict[str, Any]) -> BackendResult:
        gate, memory, memory_gate = (data.get(k) for k in ("latency_gate", "memory", "memory_gate"))
        return cls(
            label=label,
            precision=data.get("precision", ""),
            samples_s=[float(v) for v in data.get("samples_s", ())],
            stages=[StageTimings.from_raw(s) for s in data.get("stages", ())],
            control_samples_s=[float(v) for v in data.get("control_samples_s", ())],
            pressure=[float(v) for v in data.get("pressure", ())],
            prepare_seconds=data.get("prepare_s"),
            prepare_details=dict(data.get("prepare_details") or {}),
            equivalence={k: dict(v) for k, v in (data.get("equivalence") or {}).items()},
            outputs=dict(data.get("outputs") or {}),
            gate=Verdict.from_dict(label, gate) if gate else None,
            control=data.get("control", CONTROL_EAGER),
            memory=MemoryFigures.from_dict(memory) if memory else None,
            memory_gate=Verdict.from_dict(label, memory_gate) if memory_gate else None,
            roofline={k: dict(v) for k, v in (data.get("roofline") or {}).items()},
            throughput=ThroughputFigures.from_dict(label, data["throughput"])
            if data.get("throughput")
            else None,
        )

    # ---- merging ---------------------------------------------------------------------------
    def merge(self, other: BackendResult) -> BackendResult:
        """Two parts of one backend's results from one run (pytest-xdist workers): equivalence
        and outputs by study; the latency rounds come from the one worker that timed them."""
        if self.label != other.label:
            raise ResultsError(f"cannot merge results of {self.label!r} and {other.label!r}")
        if self.samples_s and other.samples_s:
            raise ResultsError(
                f"{self.label}: two sets of latency rounds in one run (two workers timed it)"
            )
        timed = self if self.samples_s or self.gate is not None else other
        prepared = [r.prepare_seconds for r in (self, other) if r.prepare_seconds is not None]
        return BackendResult(
            label=self.label,
            precision=self.precision or other.precision,
            samples_s=list(timed.samples_s),
            stages=list(timed.stages),
            control_samples_s=list(timed.control_samples_s),
            pressure=list(timed.pressure),
            prepare_seconds=max(prepared) if prepared else None,
            prepare_details={**other.prepare_details, **self.prepare_details},
            equivalence={**self.equivalence, **other.equivalence},
            outputs={**self.outputs, **other.outputs},
            gate=timed.gate if timed.gate is not None else (self.gate or other.gate),
            control=timed.control,
            memory=timed.memory if timed.memory is not None else (self.memory or other.memory),
            memory_gate=timed.memory_gate or self.memory_gate or other.memory_gate,
            roofline=dict(timed.roofline or self.roofline or other.roofline),
            throughput=self.throughput if self.throughput is not None else other.throughput,
        )


@dataclass
class CampaignSummary:
    """How the run's one latency campaign went."""

    rounds: int
    seconds: float
    stopped: str  # "decided" | "cap" | "time budget"
    looks: int
    batch_rounds: int
    max_rounds: int
    probe_repeats: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "seconds": self.seconds,
            "stopped": self.stopped,
            "looks": self.looks,
            "batch_rounds": self.batch_rounds,
            "max_rounds": self.max_rounds,
            "probe_repeats": self.probe_repeats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], batch_rounds: int | None = None) -> CampaignSummary:
        size = int(data.get("batch_rounds") or batch_rounds or 1)
        return cls(
            rounds=int(data["rounds"]),
            seconds=float(data["seconds"]),
            stopped=str(data["stopped"]),
            looks=int(data["looks"]),
            batch_rounds=size,
            max_rounds=int(data.get("max_rounds") or data["rounds"]),
            probe_repeats=data.get("probe_repeats"),
        )


@dataclass
class RunResults:
    """One run: its settings and machine, the campaign, one :class:`BackendResult` per backend,
    the backends that could not run (with the reason) and notices."""

    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    campaign: CampaignSummary | None = None
    backends: dict[str, BackendResult] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    # study name -> {"images": {view: path or data: URI}, "indication": text}: what the HTML
    # report shows beside the reports (paths are read when the report is written)
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the ceilings behind every backend's roofline fractions; None: not looked for (nothing was
    # timed, --cxr-ceilings=off, or results of an earlier release)
    roofline: RooflineBasis | None = None

    def backend(self, label: str) -> BackendResult:
        """The row of a backend, created on first use."""
        return self.backends.setdefault(label, BackendResult(label))

    def notice(self, text: str) -> None:
        if text and text not in self.notices:
            self.notices.append(text)

    @property
    def failed(self) -> list[str]:
        """Labels of the backends whose latency gate or equivalence failed."""
        return [label for label, result in self.backends.items() if result.failed]

    # ---- assembly at the end of a run ------------------------------------------------------
    def record_session(self, state: SessionCaches) -> None:
        """What the run's caches know that the results report: the reference model (its
        description, load time and memory, the work of a timed generation) and the session's
        notices. On every process with a session, before a worker sends its results."""
        reference = state.reference_loaded
        if reference is not None:
            self.model = dict(reference.describe())
            self.model["load_s"] = state.model_load_seconds
            if state.model_load_memory is not None:  # the reference's weights: the floor
                self.model["load_peak_mib"] = round(state.model_load_memory.delta_mib, 1)
            if any(r.stages for r in self.backends.values()):  # this process timed them
                try:
                    self.model["cost"] = state.timed_cost
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    self.notice(f"roofline: the model's work could not be counted: {exc!r}")
        elif not self.model:
            self.model = {"name": state.settings.model}
        for notice in state.notices:
            self.notice(notice)

    def record_machine(self) -> None:
        """This machine's facts, where no worker's results brought them (on the process that
        writes the reports)."""
        if not self.machine and self.settings:
            self.machine = machine_info(int(self.settings.get("threads") or 1))

    def record_studies(self, state: SessionCaches) -> None:
        """Each study's images (paths) and indication, for the HTML report."""
        if self.studies:
            return
        try:
            studies = state.studies
        except CxrPerfError:
            return
        wanted = {s for r in self.backends.values() for s in (*r.outputs, *r.equivalence)}
        for study in studies:
            if study.name in wanted:
                self.studies[study.name] = {
                    "images": {view: str(path.absolute()) for view, path in study.images()},
                    "indication": study.indication,
                }

    # ---- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        settings = dict(self.settings)
        settings["batch_rounds"] = self.campaign.batch_rounds if self.campaign else None
        return {
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "machine": self.machine,
            "model": self.model,
            "settings": settings,
            "latency_campaign": self.campaign.to_dict() if self.campaign else None,
            "backends": {label: r.to_dict() for label, r in self.backends.items()},
            "unavailable": dict(self.unavailable),
            "notices": list(self.notices),
            "studies": {name: dict(study) for name, study in self.studies.items()},
            **({"roofline": self.roofline.to_dict()} if self.roofline is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResults:
        if not isinstance(data, dict) or "backends" not in data:
            raise ResultsError("not a cxrperf results file (no 'backends')")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"results schema {version!r} is not supported (this release reads "
                f"{SCHEMA_VERSION}): rerun with this release's --cxr-json"
            )
        settings = dict(data.get("settings") or {})
        batch_rounds = settings.pop("batch_rounds", None)  # written from the campaign's
        campaign = data.get("latency_campaign")
        roofline = data.get("roofline")
        return cls(
            settings=settings,
            machine=dict(data.get("machine") or {}),
            model=dict(data.get("model") or {}),
            campaign=(CampaignSummary.from_dict(campaign, batch_rounds) if campaign else None),
            backends={
                label: BackendResult.from_dict(label, entry)
                for label, entry in data["backends"].items()
            },
            unavailable=dict(data.get("unavailable") or {}),
            notices=list(data.get("notices") or []),
            created=str(data.get("created") or ""),
            studies={k: dict(v) for k, v in (data.get("studies") or {}).items()},
            roofline=RooflineBasis.from_dict(roofline) if roofline else None,
        )

    # ---- merging ---------------------------------------------------------------------------
    def merge(self, other: RunResults) -> RunResults:
        """The results of one run split over processes (pytest-xdist workers), as one."""
        backends = dict(self.backends)
        for label, result in other.backends.items():
            backends[label] = backends[label].merge(result) if label in backends else result
        if self.campaign is not None and other.campaign is not None:
            raise ResultsError("two latency campaigns in one run (two workers timed backends)")
        notices = list(self.notices) + [n for n in other.notices if n not in self.notices]
        return RunResults(
            settings=self.settings or other.settings,
            machine=self.machine or other.machine,
            model=self.model if len(self.model) >= len(other.model) else other.model,
            campaign=self.campaign or other.campaign,
            backends=backends,
            unavailable={**self.unavailable, **other.unavailable},
            notices=notices,
            created=self.created or other.created,
            studies={**other.studies, **self.studies},
            roofline=self.roofline or other.roofline,
        )
