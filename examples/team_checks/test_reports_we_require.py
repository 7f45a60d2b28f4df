"""A team's own checks, beside pytest-cxrperf's built-in suite.

Copy this file into your repository's tests. With the plugin installed, `pytest` runs it on the
backends of your ini's `cxr_backend` (eager fp32 when unset); `pytest --cxr-backend=all` runs it
on every available backend, together with the built-in latency and equivalence suite.

Fixtures used (all provided by the plugin, each prepared once per session):
  cxr_report   the report the current backend writes for the current study (a str)
  cxr_backend  the prepared backend (.label, .precision, .runner), parametrized over the backends
  cxr_study    the study (images + INDICATION / TECHNIQUE / COMPARISON), parametrized over studies
  cxr_session  the run's caches: settings, the reference model, inputs, reference outputs
"""

from pytest_cxrperf.gate.findings import extract


def test_report_addresses_pneumothorax(cxr_backend, cxr_study, cxr_report):
    """A pneumothorax must never go unmentioned: every report says whether there is one."""
    findings = extract(cxr_report)
    assert any(f.label == "Pneumothorax" for f in findings), (
        f"{cxr_backend.label} on {cxr_study.name} does not address pneumothorax: {cxr_report!r}"
    )


def test_report_is_not_cut_off(cxr_backend, cxr_study, cxr_report):
    """A report ends with a full sentence: a truncated one means --cxr-max-new-tokens is too low
    for this model, or the backend stops early."""
    assert cxr_report.rstrip().endswith("."), (
        f"{cxr_backend.label} on {cxr_study.name} ends mid-sentence: {cxr_report!r}"
    )
