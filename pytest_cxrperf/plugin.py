"""pytest glue: options, fixtures, parametrization over backends, the summary and the JSON report.

The domain work lives in :mod:`pytest_cxrperf.session`; this module only connects it to pytest.
"""

from __future__ import annotations

from typing import Any

import pytest

from .errors import CxrPerfError, CxrPerfWarning
from .session import CxrSession, PreparedBackend, ReferenceOutput, resolve_backends
from .settings import BackendSpec, Settings, build_settings

session_key = pytest.StashKey[CxrSession]()

_OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("cxr_backend", "'all' or a comma list of backends (e.g. eager,compile; eager+slow=1.25)", {}),
    (
        "cxr_model",
        "model preset (toy, tiny, bench, cxrreportgen, maira2) or checkpoint directory",
        {},
    ),
    (
        "cxr_rounds",
        "cap on timed rounds per backend (default 400; the gate stops earlier once it knows)",
        {},
    ),
    (
        "cxr_time_budget",
        "seconds the latency campaign (all backends together) may take (default 100)",
        {},
    ),
    (
        "cxr_batch_rounds",
        "rounds per batch of the gate's statistics (default: 10, or 1 for long generations)",
        {},
    ),
    (
        "cxr_unknown",
        "a latency change still unclear at the cap: warn (default) or fail",
        {},
    ),
    ("cxr_warmup", "untimed warm-up rounds per backend", {}),
    ("cxr_threads", "CPU threads for every backend (default: all cores available)", {}),
    ("cxr_max_new_tokens", "new tokens per generation (latency runs force exactly this many)", {}),
    ("cxr_json", "write the results as JSON to this path", {}),
    ("cxr_studies", "folder of study *.json files (default: the shipped samples)", {}),
    ("cxr_baseline_dir", "latency baseline store (default: baselines/ beside the ini file)", {}),
    ("cxr_threshold", "latency regression threshold, e.g. 0.1 or 10% (default 10%)", {}),
    (
        "cxr_alpha",
        "chance that a run wrongly fails any backend's latency gate (default 0.01)",
        {},
    ),
    ("cxr_missing_baseline", "no baseline for a backend: warn (default) or fail", {}),
    (
        "cxr_fail_on_improvement",
        "fail a backend that is significantly faster than its baseline (refresh it)",
        {"action": "store_true"},
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cxrperf", "chest-X-ray report model performance gate")
    for name, help_text, extra in _OPTIONS:
        flag = "--" + name.replace("_", "-")
        group.addoption(flag, dest=name, default=None, help=help_text, **extra)
        parser.addini(name, help_text, default="")
    parser.addini(
        "cxr_tolerances",
        "equivalence tolerance overrides, one per line: 'bf16.prefill_rel_err = 0.08'",
        type="linelist",
        default=[],
    )
    parser.addini(
        "cxr_thresholds",
        "per-backend latency thresholds, one per line: 'openvino = 0.15'",
        type="linelist",
        default=[],
    )
    group.addoption(
        "--cxr-update-baselines",
        dest="cxr_update_baselines",
        action="store_true",
        default=None,
        help="write the measured latencies as the new baselines (never for +slow specs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cxr_latency: latency test of a backend (cxrperf suite)")
    config.addinivalue_line(
        "markers",
        "cxr_equivalence: output equivalence of a backend with eager fp32 (cxrperf suite)",
    )
    try:
        settings = build_settings(config.getoption, config.getini, config.rootpath)
        from .gate.equivalence import unknown_tolerance_keys

        bad = unknown_tolerance_keys(settings.tolerances)
        if bad:
            raise CxrPerfError(f"cxr_tolerances: unknown metric in {bad}")
        resolved = resolve_backends(settings)
        from .validation import validate_run

        notes = validate_run(settings, resolved, vars(config.option))
    except CxrPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    for note in notes:
        config.issue_config_time_warning(CxrPerfWarning(note), stacklevel=2)
    import torch

    torch.set_num_threads(settings.threads)
    config.stash[session_key] = CxrSession(settings, resolved)


def _session(config: pytest.Config) -> CxrSession:
    return config.stash[session_key]


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = _session(config)
    s: Settings = session.settings
    lines = [
        f"cxrperf: model={s.model} backends={','.join(r.label for r in session.runnable) or '-'} "
        f"threads={s.threads} rounds={s.rounds} warmup={s.warmup} new_tokens={s.max_new_tokens}"
    ]
    lines += [f"cxrperf: not run: {r.label}: {r.availability.reason}" for r in session.unavailable]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = _session(metafunc.config)
    if "cxr_backend" in metafunc.fixturenames:
        params = [
            pytest.param(
                r.spec,
                id=r.label,
                marks=()
                if r.availability.ok
                else pytest.mark.skip(reason=f"{r.label}: {r.availability.reason}"),
            )
            for r in session.resolved
        ]
        metafunc.parametrize("cxr_backend", params, indirect=True, scope="session")
    if "cxr_study" in metafunc.fixturenames:
        try:
            studies = session.studies
        except CxrPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
        metafunc.parametrize(
            "cxr_study", studies, ids=[s.name for s in studies], indirect=True, scope="session"
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --cxr-update-baselines, synthetic slowdowns (``eager+slow=1.5``) run last, so that they
    are judged against the baselines this run has just written (pytest may reorder
    session-parametrized tests otherwise)."""
    if session_key not in config.stash or not _session(config).settings.update_baselines:
        return

    def slowed(item: pytest.Item) -> bool:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("cxr_backend")
        return isinstance(spec, BackendSpec) and spec.slow != 1.0

    items.sort(key=slowed)  # stable: everything else keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    """The latency campaign times every collected latency test's backend together."""
    config = session.config
    if session_key not in config.stash:
        return
    specs: list[BackendSpec] = []
    for item in session.items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("cxr_backend")
        skipped = any(m.name == "skip" for m in item.iter_markers())
        latency = item.get_closest_marker("cxr_latency") is not None
        if latency and isinstance(spec, BackendSpec) and not skipped and spec not in specs:
            specs.append(spec)
    _session(config).latency_specs = specs


def _fail_run(exc: CxrPerfError) -> None:
    pytest.exit(f"cxrperf: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def cxr_session(request: pytest.FixtureRequest) -> CxrSession:
    """The run's state: settings, backends, results."""
    return _session(request.config)


@pytest.fixture(scope="session")
def cxr_settings(cxr_session: CxrSession) -> Settings:
    return cxr_session.settings


@pytest.fixture(scope="session")
def cxr_model(cxr_session: CxrSession) -> Any:
    """The reference model (eager fp32) with its processor."""
    try:
        return cxr_session.reference
    except CxrPerfError as exc:
        _fail_run(exc)


@pytest.fixture(scope="session")
def cxr_backend(
    request: pytest.FixtureRequest, cxr_session: CxrSession, cxr_model: Any
) -> PreparedBackend:
    """A selected backend, prepared once per session (ids = backend names)."""
    spec = getattr(request, "param", None)
    if spec is None:
        pytest.fail("cxr_backend is parametrized by pytest-cxrperf; request it from a test")
    return cxr_session.use(spec)


@pytest.fixture(scope="session")
def cxr_study(request: pytest.FixtureRequest) -> Any:
    """One study (images + report context), parametrized over the study folder."""
    return request.param


@pytest.fixture(scope="session")
def cxr_reference(cxr_session: CxrSession, cxr_model: Any) -> Any:
    """``cxr_reference(study)``: the eager fp32 output (generation with logits, teacher logits)."""

    def reference(study: Any) -> ReferenceOutput:
        return cxr_session.reference_output(study)

    return reference


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if session_key not in config.stash:
        return
    from .report.terminal import summary_lines

    lines = summary_lines(_session(config))
    if lines:
        terminalreporter.section("cxrperf summary")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if session_key not in config.stash or hasattr(config, "workerinput"):
        return
    state = _session(config)
    if state.settings.json_path is None:
        return
    from .atomic import write_json_atomic
    from .report.json_report import build_report

    write_json_atomic(state.settings.json_path, build_report(state))
