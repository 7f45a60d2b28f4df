"""pytest glue: options, lazy activation, the built-in suite, fixtures, pytest-xdist, writers.

The plugin costs nothing until cxr is in play: this module imports pytest and the standard library
only, and torch, transformers and the backends load when a cxr option or ini key is given, or a
test asks for a cxr fixture. The suite (:mod:`pytest_cxrperf.suite`) is collected beside the
user's tests when ``--cxr-backend`` (or ``--cxr-suite``, ``--cxr-update-baselines``) is given.
The domain work lives in :mod:`.session` (caches), :mod:`.gate` (measuring, judging, comparing)
and :mod:`.results`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .state import SUITE_NODE_PREFIX, WORKER_OUTPUT_KEY, results_key, results_of, session_key
from .xdist_hooks import LATENCY_GROUP

if TYPE_CHECKING:
    from .results import RunResults
    from .session import CxrSession, PreparedBackend, ReferenceOutput
    from .settings import Settings

SUITE_DIR = Path(__file__).parent / "suite"
SUITE_FILES = ("test_equivalence.py", "test_latency.py")
THROUGHPUT_FILE = "test_throughput.py"  # collected with --cxr-throughput only
CXR_FIXTURES = ("cxr_backend", "cxr_study")  # parametrized by the plugin: activate at collection
INI_ONLY = ("cxr_tolerances", "cxr_thresholds")

pytest.register_assert_rewrite("pytest_cxrperf.suite")

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
    (
        "cxr_markdown",
        "write a Markdown summary (headline, table, details) to this path; also appended to "
        "$GITHUB_STEP_SUMMARY when that is set",
        {},
    ),
    ("cxr_html", "write a self-contained HTML report (charts, reports, findings) here", {}),
    ("cxr_bmf", "write the latency (and memory) figures in Bencher Metric Format here", {}),
    (
        "cxr_ceilings",
        "the roofline column's machine ceilings: cached (default: what `cxrperf ceilings` "
        "stored, never measured by the run), measure (measure and cache them when absent, "
        "about 15 s after the timed rounds) or off",
        {},
    ),
    ("cxr_studies", "folder of study *.json files (default: the shipped samples)", {}),
    ("cxr_baseline_dir", "latency baseline store (default: baselines/ beside the ini file)", {}),
    ("cxr_threshold", "latency regression threshold, e.g. 0.1 or 10% (default 10%)", {}),
    (
        "cxr_alpha",
        "chance that a run wrongly fails any backend's latency gate (default 0.01)",
        {},
    ),
    (
        "cxr_session_noise",
        "prior sd of the drift one run cannot see (each fresh process's offset, slow machine "
        "drift), e.g. 0.03 or 3% (default 3%); the baseline's sessions refine it; 0 trusts one run",
        {},
    ),
    (
        "cxr_missing_baseline",
        "no baseline for a backend on this machine class: warn (default) or fail",
        {},
    ),
    (
        "cxr_save_missing",
        "write what a backend without a baseline for this machine class would record into this "
        "folder (a store of its own, e.g. a CI artifact to review and commit); those backends "
        "are timed to the cap",
        {},
    ),
    (
        "cxr_throughput",
        "add the throughput test per backend: a worklist with several studies in flight "
        "(studies/hour, latency p50/p95/p99 under load, batched reports' equivalence), gated "
        "against per-machine-class throughput baselines",
        {"action": "store_true"},
    ),
    ("cxr_concurrency", "studies in flight in the throughput test (default 4)", {}),
    (
        "cxr_worklist",
        "studies in the throughput test's worklist: the run's studies repeated, each repetition "
        "shuffled (default: twice the concurrency)",
        {},
    ),
    (
        "cxr_cost_per_hour",
        "what the machine costs per hour (any currency, e.g. 0.85): adds the cost per 1,000 "
        "reports to the throughput figures",
        {},
    ),
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
        "--cxr-suite",
        dest="cxr_suite",
        action="store_true",
        default=None,
        help="collect the built-in latency and equivalence suite beside your tests (implied by "
        "--cxr-backend and --cxr-update-baselines)",
    )
    group.addoption(
        "--cxr-update-baselines",
        dest="cxr_update_baselines",
        action="store_true",
        default=None,
        help="write the measured latencies as the new baselines (never for +slow specs)",
    )


# ---- when cxr is in play -------------------------------------------------------------------------
SUITE_OPTIONS = ("cxr_backend", "cxr_update_baselines", "cxr_suite", "cxr_throughput")


def options_given(config: pytest.Config) -> list[str]:
    """The cxr options given on the command line."""
    names = [name for name, _, _ in _OPTIONS] + ["cxr_update_baselines", "cxr_suite"]
    return [name for name in names if config.getoption(name, None) is not None]


def suite_requested(config: pytest.Config) -> bool:
    """``--cxr-backend``, ``--cxr-update-baselines`` or ``--cxr-suite`` on the command line: run
    the built-in suite beside the tests pytest collects. Other cxr options (a model, a JSON path)
    configure the run without adding the suite to a team's own tests."""
    return any(config.getoption(name, None) is not None for name in SUITE_OPTIONS)


def ini_keys_set(config: pytest.Config) -> list[str]:
    names = [name for name, _, _ in _OPTIONS] + list(INI_ONLY)
    return [name for name in names if config.getini(name)]  # unset: "" or []


def cxr_requested(config: pytest.Config) -> bool:
    """A cxr option or ini key is in play (a cxr fixture activates the plugin on its own)."""
    return bool(options_given(config) or ini_keys_set(config))


def active(config: pytest.Config) -> bool:
    return session_key in config.stash


def activate(config: pytest.Config) -> CxrSession:
    """Build and validate the run's settings, resolve the backends and set the thread count: the
    first time cxr is in play in this process (a usage error on bad settings)."""
    if session_key in config.stash:
        return config.stash[session_key]
    from .errors import CxrPerfError, CxrPerfWarning
    from .gate.equivalence import unknown_tolerance_keys
    from .report.json_report import settings_block
    from .session import CxrSession, resolve_backends
    from .settings import build_settings
    from .validation import validate_run

    try:
        settings = build_settings(config.getoption, config.getini, config.rootpath)
        bad = unknown_tolerance_keys(settings.tolerances)
        if bad:
            raise CxrPerfError(f"cxr_tolerances: unknown metric in {bad}")
        resolved = resolve_backends(settings)
        notes = validate_run(settings, resolved, vars(config.option))
    except CxrPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    for note in notes:
        config.issue_config_time_warning(CxrPerfWarning(note), stacklevel=2)
    import torch

    torch.set_num_threads(settings.threads)
    session = CxrSession(settings, resolved)
    results = results_of(config)
    results.settings = settings_block(settings)
    results.unavailable.update({r.label: r.availability.reason for r in session.unavailable})
    config.stash[session_key] = session
    return session


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# ---- configuration ---------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cxr_latency: latency test of a backend (cxrperf suite)")
    config.addinivalue_line(
        "markers",
        "cxr_equivalence: output equivalence of a backend with eager fp32 (cxrperf suite)",
    )
    config.addinivalue_line(
        "markers",
        "cxr_throughput: throughput of a backend with several studies in flight (cxrperf suite, "
        "--cxr-throughput)",
    )
    if config.pluginmanager.hasplugin("xdist"):
        from .xdist_hooks import XdistHooks

        hooks = XdistHooks()
        config.pluginmanager.register(hooks, "cxrperf-xdist")
        hooks.configure(config, cxr_requested(config), suite_requested(config))
    if cxr_requested(config):
        activate(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not active(config):
        return []
    session = config.stash[session_key]
    s: Settings = session.settings
    lines = [
        f"cxrperf: model={s.model} backends={','.join(r.label for r in session.runnable) or '-'} "
        f"threads={s.threads} rounds={s.rounds} warmup={s.warmup} new_tokens={s.max_new_tokens}"
    ]
    lines.append(f"cxrperf: machine class {session.machine_class.describe()}")
    lines += [f"cxrperf: not run: {r.label}: {r.availability.reason}" for r in session.unavailable]
    return lines


# ---- collection ------------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [name for name in CXR_FIXTURES if name in metafunc.fixturenames]
    if not wanted:
        return
    session = activate(metafunc.config)
    if "cxr_backend" in wanted:
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
    if "cxr_study" in wanted:
        from .errors import CxrPerfError

        try:
            studies = session.studies
        except CxrPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
        metafunc.parametrize(
            "cxr_study", studies, ids=[s.name for s in studies], indirect=True, scope="session"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the built-in suite (see :func:`suite_requested`), and, with pytest-xdist, put every
    latency test into one xdist group, so that one worker times them all, one after another."""
    if suite_requested(config):
        items += _suite_items(session, items)
    if not config.pluginmanager.hasplugin("xdist"):
        return  # the mark is xdist's: without it pytest would warn that it is unknown
    for item in items:
        timed = ("cxr_latency", "cxr_throughput")
        if any(item.get_closest_marker(name) is not None for name in timed):
            item.add_marker(pytest.mark.xdist_group(LATENCY_GROUP))


def _suite_items(session: pytest.Session, collected: list[pytest.Item]) -> list[pytest.Item]:
    """The suite's tests, unless the command line already named its files."""
    have = {item.path for item in collected}
    items: list[pytest.Item] = []
    files = list(SUITE_FILES)
    if active(session.config) and session.config.stash[session_key].settings.throughput:
        files.append(THROUGHPUT_FILE)
    for name in files:
        path = SUITE_DIR / name
        if path in have:
            continue
        module = pytest.Module.from_parent(session, path=path, nodeid=f"{SUITE_NODE_PREFIX}/{name}")
        items += session.genitems(module)
    return items


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def order_slowdowns_last(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --cxr-update-baselines, synthetic slowdowns (``eager+slow=1.5``) run last, so that they
    are judged against the baselines this run has just written (pytest may reorder
    session-parametrized tests otherwise)."""
    if not active(config) or not config.stash[session_key].settings.update_baselines:
        return
    from .settings import BackendSpec

    def slowed(item: pytest.Item) -> bool:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("cxr_backend")
        return isinstance(spec, BackendSpec) and spec.slow != 1.0

    items.sort(key=slowed)  # stable: everything else keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fix which backends the collected tests use: the latency campaign times every collected
    latency test's backend together, the throughput campaign every throughput test's."""
    config = session.config
    if not active(config):
        return
    from .collected import collected_backends
    from .settings import BackendSpec

    tests = []
    for item in session.items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("cxr_backend")
        markers = frozenset(m.name for m in item.iter_markers())
        if isinstance(spec, BackendSpec) and "skip" not in markers:
            tests.append((spec, markers))
    state = config.stash[session_key]
    state.collected = collected_backends(tests, [r.spec for r in state.resolved])


# ---- fixtures --------------------------------------------------------------------------------
def _fail_run(exc: Exception) -> None:
    pytest.exit(f"cxrperf: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def cxr_session(request: pytest.FixtureRequest) -> CxrSession:
    """The run's caches: settings, backends, the reference model, studies, prepared runners."""
    return activate(request.config)


@pytest.fixture(scope="session")
def cxr_results(request: pytest.FixtureRequest, cxr_session: CxrSession) -> RunResults:
    """What the run has found so far (latency, verdicts, equivalence, outputs)."""
    return results_of(request.config)


@pytest.fixture(scope="session")
def cxr_settings(cxr_session: CxrSession) -> Settings:
    return cxr_session.settings


@pytest.fixture(scope="session")
def cxr_model(cxr_session: CxrSession) -> Any:
    """The reference model (eager fp32) with its processor."""
    from .errors import CxrPerfError

    try:
        return cxr_session.reference
    except CxrPerfError as exc:
        _fail_run(exc)


@pytest.fixture(scope="session")
def cxr_backend(
    request: pytest.FixtureRequest, cxr_session: CxrSession, cxr_results: RunResults, cxr_model: Any
) -> PreparedBackend:
    """A selected backend, prepared once per session (ids = backend names)."""
    from .gate.latency import record_prepared

    spec = getattr(request, "param", None)
    if spec is None:
        pytest.fail("cxr_backend is parametrized by pytest-cxrperf; request it from a test")
    if not is_worker(request.config):
        _prepare_in_asked_order(cxr_session, cxr_results, spec)
    return record_prepared(cxr_session, cxr_results, spec)


def _prepare_in_asked_order(cxr_session: CxrSession, cxr_results: RunResults, spec: Any) -> None:
    """Prepare the run's backends that come before ``spec`` in the order they were asked for.

    What is prepared before a backend moves its memory peaks (the allocator reuses what earlier
    ones freed), so a memory baseline is only comparable with a run that prepared the same
    backends before it. Tests run in whatever order pytest collected them (a latency-only refresh
    starts with other backends than the main job, whose equivalence tests come first): preparing
    in the asked order makes every selection's history the same. A backend that fails to prepare
    here fails in its own tests. Not on pytest-xdist workers: each prepares only what it runs."""
    from .gate.latency import record_prepared

    for earlier in cxr_session.collected.used:
        if earlier == spec:
            return
        if "+" in earlier.label:
            continue
        try:
            record_prepared(cxr_session, cxr_results, earlier)
        except Exception:  # any failure of another backend is reported by that backend's tests
            continue


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


@pytest.fixture
def cxr_report(cxr_session: CxrSession, cxr_backend: PreparedBackend, cxr_study: Any) -> str:
    """The report the current backend writes for the current study (generated once per
    session; not timed)."""
    return cxr_session.generation(cxr_backend, cxr_study).text


# ---- the end of the run: results to the controller, the summary, the JSON ------------------
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if results_key not in config.stash:
        return
    results = config.stash[results_key]
    if active(config):
        results.record_session(config.stash[session_key])
    if is_worker(config):
        config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(results.to_dict())  # type: ignore[attr-defined]
        return
    results.record_machine()
    if active(config):
        from .report.writers import write_reports

        state = config.stash[session_key]
        _fill_roofline(state.settings, results)
        results.record_studies(state)
        write_reports(state.settings, results)


def _fill_roofline(settings: Settings, results: RunResults) -> None:
    """Each timed backend's roofline fractions, once per run, on the process that writes the
    reports (after the workers' results are merged)."""
    if settings.ceilings == "off" or not any(r.stages for r in results.backends.values()):
        return
    from .ceilings import for_run
    from .roofline import fill_roofline

    found, source = for_run(settings.ceilings, settings.threads)
    fill_roofline(results, found, source)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if results_key not in config.stash or is_worker(config):
        return
    from .report.terminal import summary_lines

    lines = summary_lines(config.stash[results_key], verbose=config.option.verbose)
    if lines:
        terminalreporter.section("cxrperf summary")
        for line in lines:
            terminalreporter.write_line(line)
