"""Each backend against the eager fp32 reference, on every study."""

import pytest

CHECKS = ("token_ids", "prefill_logits", "teacher_forced_top1")


@pytest.mark.cxr_equivalence
@pytest.mark.parametrize("check", CHECKS)
def test_equivalence(check, cxr_backend, cxr_study, cxr_session):
    outcome = cxr_session.check_equivalence(cxr_backend, cxr_study)[check]
    assert outcome["ok"], f"{cxr_backend.label} on {cxr_study.name}: {outcome['message']}"
