"""RunResults: one typed result model that serializes both ways and merges worker parts."""

import json

import pytest

from pytest_cxrperf.backends.timings import StageTimings
from pytest_cxrperf.gate.decision import OK, REGRESSED, Comparison, Status, Verdict
from pytest_cxrperf.results import (
    BackendResult,
    CampaignSummary,
    MemoryFigures,
    ResultsError,
    RunResults,
)


def timed(label, control="eager"):
    relative = Comparison(
        "relative", control, 1.0, 1.3, 1.3, (1.2, 1.4), 30, 30, (3, 3), Status.REGRESSED
    )
    return BackendResult(
        label=label,
        precision="bf16",
        samples_s=[0.5, 0.6, 0.55],
        stages=[StageTimings(0.1, 0.2, (0.01, 0.02)) for _ in range(3)],
        control_samples_s=[1.0, 1.1, 1.05],
        prepare_seconds=2.0,
        gate=Verdict(label, REGRESSED, True, 0.1, 0.01, "b/x.json", None, relative, ("n",)),
        control=control,
        memory=MemoryFigures(120.0, 8.5, 900.0, 130.0, 180.0),
    )


def checked(label, study, ok=True):
    result = BackendResult(label=label, precision="bf16", prepare_seconds=1.5)
    result.equivalence[study] = {"token_ids": {"ok": ok, "message": "m"}}
    result.outputs[study] = f"report of {study}"
    return result


def run(*backends, campaign=None):
    results = RunResults(
        settings={"model": "toy", "threads": 1},
        campaign=campaign,
        unavailable={"ipex": "needs torch 2.8"},
        notices=["IPEX is archived"],
    )
    for backend in backends:
        results.backends[backend.label] = backend
    return results


def test_a_run_survives_json_both_ways():
    results = run(
        timed("eager-bf16"),
        checked("openvino", "study-001", ok=False),
        campaign=CampaignSummary(30, 4.5, "cap", 1, 10, 30, 3),
    )
    text = json.dumps(results.to_dict())
    back = RunResults.from_dict(json.loads(text))
    assert back == results
    assert back.backends["eager-bf16"].gate.status is Status.REGRESSED
    assert back.failed == ["eager-bf16", "openvino"]


def test_the_json_keeps_the_report_keys_readers_use():
    entry = run(timed("eager-bf16")).to_dict()["backends"]["eager-bf16"]
    assert entry["latency_gate"]["status"] == "regressed"  # a str enum writes its value
    assert entry["speedup_vs_eager"] == pytest.approx(1.05 / 0.55)
    assert entry["median_s"] == 0.55 and entry["rounds"] == 3
    assert set(entry["stage_medians_s"]) >= {"vision_s", "prefill_s", "per_token_s"}


def test_worker_parts_merge_into_one_row_per_backend():
    timed_row = timed("eager-bf16")
    timed_row.equivalence.update(checked("eager-bf16", "study-001").equivalence)
    timed_row.outputs["study-001"] = "report of study-001"
    latency_worker = run(timed_row)
    other_worker = run(checked("eager-bf16", "study-002", ok=False))
    other_worker.campaign = None
    merged = latency_worker.merge(other_worker)
    row = merged.backends["eager-bf16"]
    assert set(row.equivalence) == {"study-001", "study-002"}
    assert set(row.outputs) == {"study-001", "study-002"}
    assert row.samples_s == [0.5, 0.6, 0.55] and row.gate is not None
    assert row.prepare_seconds == 2.0
    assert row.equivalence_failures() == ["study-002: token_ids"]
    assert merged.notices == ["IPEX is archived"]  # not doubled


def test_a_merge_never_hides_two_timings_of_one_backend():
    with pytest.raises(ResultsError, match="two sets of latency rounds"):
        run(timed("eager")).merge(run(timed("eager")))
    one = CampaignSummary(30, 4.5, "cap", 1, 10, 30, 3)
    with pytest.raises(ResultsError, match="two latency campaigns"):
        run(campaign=one).merge(run(campaign=one))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"schema_version": 1}, "no 'backends'"),
        ({"schema_version": 99, "backends": {}}, "schema 99 is not supported"),
        ([], "no 'backends'"),
    ],
)
def test_foreign_json_is_a_clear_error(data, message):
    with pytest.raises(ResultsError, match=message):
        RunResults.from_dict(data)


def test_statuses_are_str_enums_with_their_old_values():
    assert (
        OK == "ok"
        and f"{Status.UNKNOWN}" == "not yet known"
        and str(Status.MISSING) == ("no baseline")
    )
    verdict = Verdict("x", OK, False)
    assert Verdict.from_dict("x", json.loads(json.dumps(verdict.as_dict()))) == verdict
