"""Each backend against the eager fp32 reference, on every study."""

import pytest

from pytest_cxrperf.gate.equivalence import equivalence_of

CHECKS = ("token_ids", "prefill_logits", "teacher_forced_top1", "clinical_findings")


@pytest.mark.cxr_equivalence
@pytest.mark.parametrize("check", CHECKS)
def test_equivalence(check, cxr_backend, cxr_study, cxr_session, cxr_results):
    outcome = equivalence_of(cxr_session, cxr_results, cxr_backend, cxr_study)[check]
    assert outcome["ok"], f"{cxr_backend.label} on {cxr_study.name}: {outcome['message']}"


@pytest.mark.cxr_equivalence
def test_findings_match_ground_truth(cxr_backend, cxr_study, cxr_session, cxr_results):
    """The toy radiologist must write the phantom's true findings, on every backend."""
    checks = equivalence_of(cxr_session, cxr_results, cxr_backend, cxr_study)
    if "ground_truth_findings" not in checks:
        pytest.skip(
            f"ground truth is checked for the trained toy model only (model: "
            f"{cxr_session.settings.model}; study findings known: "
            f"{cxr_study.reference_findings is not None})"
        )
    outcome = checks["ground_truth_findings"]
    assert outcome["ok"], f"{cxr_backend.label} on {cxr_study.name}: {outcome['message']}"
