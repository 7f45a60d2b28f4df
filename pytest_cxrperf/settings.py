"""Run settings from the command line and ``[tool.pytest.ini_options]``, validated once.

The command line wins over ini. Every invalid value becomes a :class:`SettingsError` that names the
option and says what is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .backends.registry import REFERENCE_BACKEND
from .errors import SettingsError
from .gate.plan import (
    DEFAULT_ALPHA,
    DEFAULT_SESSION_NOISE,
    DEFAULT_THRESHOLD,
    MIN_BATCHES,
    UNKNOWN_POLICIES,
)
from .gate.plan import MISSING_POLICIES as MISSING_BASELINE_POLICIES

DEFAULT_MODEL = "toy"
DEFAULT_ROUNDS = 400  # the cap on timed rounds per backend; clear evidence stops far earlier
DEFAULT_TIME_BUDGET_S = 100.0  # the whole latency campaign, every backend together
DEFAULT_WARMUP = 1
DEFAULT_MAX_NEW_TOKENS = 32
CEILINGS_MODES = ("cached", "measure", "off")  # --cxr-ceilings (see ceilings.for_run)
DEFAULT_CONCURRENCY = 4  # studies in flight in the throughput test
DEFAULT_THROUGHPUT_ROUNDS = 24  # the throughput campaign's cap (looks after 3, 6, 12, 24 rounds)

_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?P<mods>(\+[A-Za-z_]+=[^+,]+)*)$")


@dataclass(frozen=True)
class BackendSpec:
    """A backend as named on the command line: ``eager``, ``eager+slow=1.25`` or
    ``openvino+slow=1.1+stage=decode``.

    ``slow`` makes the backend do that many times its work (computation in the generating thread,
    see :mod:`pytest_cxrperf.backends.slowdown`), in every stage or in ``stage`` only, to prove
    that the gate catches a regression of that size; it is compared with the base backend's
    baseline.
    """

    name: str
    slow: float = 1.0
    stage: str | None = None

    @property
    def label(self) -> str:
        if self.slow == 1.0:
            return self.name
        return f"{self.name}+slow={self.slow:g}" + (f"+stage={self.stage}" if self.stage else "")

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        match = _SPEC.match(text.strip())
        if not match:
            raise SettingsError(
                f"--cxr-backend: cannot parse {text!r}; write a backend name, optionally with "
                "a synthetic slowdown such as 'eager+slow=1.25'"
            )
        from .backends.slowdown import STAGES

        slow, stage = 1.0, None
        for modifier in filter(None, match["mods"].split("+")):
            key, _, value = modifier.partition("=")
            if key == "stage":
                if value not in STAGES:
                    raise SettingsError(
                        f"--cxr-backend: stage={value!r} in {text!r}; choose one of "
                        f"{', '.join(STAGES)}"
                    )
                stage = value
                continue
            if key != "slow":
                raise SettingsError(
                    f"--cxr-backend: unknown modifier {key!r} in {text!r} (known: slow, stage)"
                )
            try:
                slow = float(value)
            except ValueError:
                raise SettingsError(f"--cxr-backend: slow={value!r} is not a number") from None
            if not 1.0 <= slow <= 100.0:
                raise SettingsError(f"--cxr-backend: slow={value} must be between 1 and 100")
        if stage is not None and slow == 1.0:
            raise SettingsError(
                f"--cxr-backend: {text!r} names a stage without a slowdown; write "
                f"'{match['name']}+slow=1.1+stage={stage}'"
            )
        return cls(match["name"], slow, stage)


@dataclass(frozen=True)
class Settings:
    backend_request: str  # "all" or the comma list as given
    backends: tuple[BackendSpec, ...]  # empty when backend_request == "all" (resolved later)
    model: str = DEFAULT_MODEL
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    threads: int = 1
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    json_path: Path | None = None
    studies_dir: Path | None = None
    tolerances: Mapping[str, float] = field(default_factory=dict)
    # the latency gate (see gate/decision.py)
    baseline_dir: Path = Path("baselines")
    update_baselines: bool = False
    threshold: float = DEFAULT_THRESHOLD
    thresholds: Mapping[str, float] = field(default_factory=dict)  # per backend name
    alpha: float = DEFAULT_ALPHA
    session_noise: float = DEFAULT_SESSION_NOISE
    missing_baseline: str = "warn"
    # where the baselines of backends with none for this machine class are written (not the store)
    save_missing_dir: Path | None = None
    fail_on_improvement: bool = False
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    batch_rounds: int = 0  # rounds per batch of the gate; 0: chosen from a warm round's length
    unknown: str = "warn"  # a change still unclear at the cap: warn or fail
    # report files written at the end of the run (report/)
    markdown_path: Path | None = None
    html_path: Path | None = None
    bmf_path: Path | None = None
    # the roofline column's ceilings: "cached" (read `cxrperf ceilings`' cache only), "measure"
    # (measure and cache them when absent, ~15 s after the timed rounds) or "off"
    ceilings: str = "cached"
    # the throughput test (suite/test_throughput.py), opt-in with --cxr-throughput
    throughput: bool = False
    concurrency: int = DEFAULT_CONCURRENCY  # studies in flight
    worklist: int = 2 * DEFAULT_CONCURRENCY  # studies per worklist (the run's studies repeated)
    cost_per_hour: float | None = None  # the machine's price per hour: adds cost per 1,000 reports

    @property
    def throughput_rounds(self) -> int:
        """The throughput campaign's cap on rounds (never above --cxr-rounds)."""
        return min(self.rounds, DEFAULT_THROUGHPUT_ROUNDS)

    @property
    def select_all(self) -> bool:
        return self.backend_request == "all"

    def threshold_for(self, backend: str) -> float:
        """The regression threshold of a backend (``eager+slow=1.5`` uses eager's)."""
        return self.thresholds.get(backend, self.threshold)


def parse_backend_request(value: str) -> tuple[str, tuple[BackendSpec, ...]]:
    text = value.strip()
    if not text:
        raise SettingsError(
            "--cxr-backend is empty; use 'all' or a comma list such as 'eager,compile'"
        )
    if text == "all":
        return "all", ()
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise SettingsError(f"--cxr-backend={value!r} has an empty entry")
    if "all" in parts:
        raise SettingsError("--cxr-backend: 'all' cannot be combined with other names")
    specs = tuple(BackendSpec.parse(p) for p in parts)
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise SettingsError(f"--cxr-backend={value!r} names a backend twice")
    return text, specs


def _positive_int(option: str, value: object, minimum: int = 1) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{option}={value!r} is not an integer") from None
    if number < minimum:
        raise SettingsError(f"{option}={number} must be at least {minimum}")
    return number


def _ini_pairs(lines: list[str], option: str, example: str) -> list[tuple[str, str]]:
    """``KEY = VALUE`` lines of a linelist ini option (blank lines and # comments skipped)."""
    pairs = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{option}: {raw!r} must look like '{example}'")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_tolerances(lines: list[str]) -> dict[str, float]:
    """Lines ``KEY.METRIC = VALUE`` where KEY is a precision (see ``backends.precision``) or a
    backend name, e.g. ``bf16.prefill_rel_err = 0.08`` or ``openvino-int8.teacher_top1 = 0.9``."""
    example = "bf16.prefill_rel_err = 0.08"
    result: dict[str, float] = {}
    for key, value in _ini_pairs(lines, "cxr_tolerances", example):
        if "." not in key:
            raise SettingsError(f"cxr_tolerances: {key!r} must look like '{example}'")
        try:
            result[key] = float(value)
        except ValueError:
            raise SettingsError(f"cxr_tolerances: {value!r} is not a number") from None
    return result


def parse_fraction(option: str, value: object, upper: float = 10.0) -> float:
    """``0.1`` or ``10%`` -> 0.1, strictly between 0 and ``upper``."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SettingsError(f"{option}={value!r} is not a number (write 0.1 or 10%)") from None
    if not 0.0 < number < upper:
        raise SettingsError(f"{option}={value!r} must be above 0 and below {upper:g}")
    return number


def parse_session_noise(value: object) -> float:
    """``--cxr-session-noise``: 0 (one process is trusted) or a fraction below 1."""
    if value is None or str(value).strip() == "":
        return DEFAULT_SESSION_NOISE
    if str(value).strip().rstrip("%").strip() in ("0", "0.0"):
        return 0.0
    return parse_fraction("--cxr-session-noise", value, upper=1.0)


def parse_thresholds(lines: list[str]) -> dict[str, float]:
    """ini ``cxr_thresholds``: lines ``BACKEND = THRESHOLD``, e.g. ``openvino = 0.15``."""
    return {
        key: parse_fraction(f"cxr_thresholds {key}", value)
        for key, value in _ini_pairs(lines, "cxr_thresholds", "openvino = 0.15")
    }


def _flag(option: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{option}={value!r}: write true or false")


def build_settings(
    option: Callable[[str], object],
    ini: Callable[[str], object],
    rootdir: Path | None = None,
) -> Settings:
    """``option(name)`` reads a CLI value (None when not given); ``ini(name)`` reads the ini.

    A relative ``--cxr-baseline-dir`` is relative to the current directory; a relative ini value
    (and the default, ``baselines``) to ``rootdir``, where the ini file lies.
    """

    def pick(name: str) -> object:
        value = option(name)
        if value is None or value == "":
            value = ini(name)
        return None if value in ("", None, []) else value

    request, specs = parse_backend_request(str(pick("cxr_backend") or REFERENCE_BACKEND))
    threads_value = pick("cxr_threads")
    threads = (
        _positive_int("--cxr-threads", threads_value)
        if threads_value is not None
        else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    )
    json_value = pick("cxr_json")
    studies_value = pick("cxr_studies")
    tolerance_lines = ini("cxr_tolerances") or []
    cli_dir, ini_dir = option("cxr_baseline_dir"), ini("cxr_baseline_dir")
    if cli_dir:
        baseline_dir = Path(str(cli_dir)).absolute()
    else:
        baseline_dir = Path(str(ini_dir or "baselines"))
        if not baseline_dir.is_absolute():
            baseline_dir = (rootdir or Path.cwd()) / baseline_dir
    missing = str(pick("cxr_missing_baseline") or "warn").strip()
    if missing not in MISSING_BASELINE_POLICIES:
        choices = ", ".join(MISSING_BASELINE_POLICIES)
        raise SettingsError(f"--cxr-missing-baseline={missing!r}: choose one of {choices}")
    warmup_value = pick("cxr_warmup")
    rounds = _positive_int("--cxr-rounds", pick("cxr_rounds") or DEFAULT_ROUNDS)
    if rounds < MIN_BATCHES:
        raise SettingsError(
            f"--cxr-rounds={rounds}: the latency gate needs at least {MIN_BATCHES} rounds "
            f"({MIN_BATCHES} batches) to bound the noise; with fewer it could never fail"
        )
    unknown = str(pick("cxr_unknown") or "warn").strip()
    if unknown not in UNKNOWN_POLICIES:
        choices = ", ".join(UNKNOWN_POLICIES)
        raise SettingsError(f"--cxr-unknown={unknown!r}: choose one of {choices}")
    ceilings = str(pick("cxr_ceilings") or "cached").strip()
    if ceilings not in CEILINGS_MODES:
        raise SettingsError(
            f"--cxr-ceilings={ceilings!r}: choose one of {', '.join(CEILINGS_MODES)} (cached: "
            "use what `cxrperf ceilings` measured; measure: measure them when not cached)"
        )
    budget_value = pick("cxr_time_budget")
    batch_value = pick("cxr_batch_rounds")
    concurrency, worklist, cost = _throughput_options(pick)
    return Settings(
        backend_request=request,
        backends=specs,
        model=str(pick("cxr_model") or DEFAULT_MODEL),
        rounds=rounds,
        warmup=DEFAULT_WARMUP
        if warmup_value is None
        else _positive_int("--cxr-warmup", warmup_value, minimum=0),
        threads=threads,
        max_new_tokens=_positive_int(
            "--cxr-max-new-tokens", pick("cxr_max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        ),
        json_path=Path(str(json_value)) if json_value else None,
        studies_dir=Path(str(studies_value)) if studies_value else None,
        tolerances=parse_tolerances(list(tolerance_lines)),  # type: ignore[call-overload]
        baseline_dir=baseline_dir,
        update_baselines=_flag("--cxr-update-baselines", option("cxr_update_baselines") or False),
        threshold=parse_fraction("--cxr-threshold", pick("cxr_threshold") or DEFAULT_THRESHOLD),
        thresholds=parse_thresholds(list(ini("cxr_thresholds") or [])),  # type: ignore[call-overload]
        alpha=parse_fraction("--cxr-alpha", pick("cxr_alpha") or DEFAULT_ALPHA, upper=0.5),
        session_noise=parse_session_noise(pick("cxr_session_noise")),
        missing_baseline=missing,
        save_missing_dir=_absolute(pick("cxr_save_missing")),
        fail_on_improvement=_flag(
            "--cxr-fail-on-improvement", pick("cxr_fail_on_improvement") or False
        ),
        time_budget_s=DEFAULT_TIME_BUDGET_S
        if budget_value is None
        else float(_positive_int("--cxr-time-budget", budget_value)),
        batch_rounds=0 if batch_value is None else _positive_int("--cxr-batch-rounds", batch_value),
        unknown=unknown,
        markdown_path=_path(pick("cxr_markdown")),
        html_path=_path(pick("cxr_html")),
        bmf_path=_path(pick("cxr_bmf")),
        ceilings=ceilings,
        throughput=_flag("--cxr-throughput", pick("cxr_throughput") or False),
        concurrency=concurrency,
        worklist=worklist,
        cost_per_hour=cost,
    )


def _throughput_options(pick: Callable[[str], object]) -> tuple[int, int, float | None]:
    """--cxr-concurrency, --cxr-worklist (default: twice the concurrency, so that a study joins
    when another finishes) and --cxr-cost-per-hour, checked against each other."""
    from .throughput import parse_cost

    value = pick("cxr_concurrency")
    concurrency = (
        DEFAULT_CONCURRENCY if value is None else _positive_int("--cxr-concurrency", value)
    )
    value = pick("cxr_worklist")
    worklist = 2 * concurrency if value is None else _positive_int("--cxr-worklist", value)
    if concurrency > worklist:
        raise SettingsError(
            f"--cxr-concurrency={concurrency}: more studies in flight than the worklist's "
            f"{worklist} (--cxr-worklist); lower the concurrency or raise the worklist"
        )
    value = pick("cxr_cost_per_hour")
    try:
        cost = parse_cost(None if value is None else str(value))
    except ValueError as exc:
        raise SettingsError(str(exc).replace("--cost-per-hour", "--cxr-cost-per-hour")) from None
    return concurrency, worklist, cost


def _absolute(value: object) -> Path | None:
    return Path(str(value)).absolute() if value else None


def _path(value: object) -> Path | None:
    return Path(str(value)) if value else None
