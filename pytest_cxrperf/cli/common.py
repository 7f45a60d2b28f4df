"""What the ``cxrperf`` commands share: the in-process pytest run of ``refresh`` and
``calibrate`` (their selection options, and a plugin object that watches the run), and small
output and argument helpers."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .snapshots import Snapshot, snapshot

# the exit status of a command that cannot start (bad options, a missing tool): pytest's own
# ExitCode.USAGE_ERROR, so a CI step reads every cxrperf command and pytest alike
USAGE_ERROR = 4


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)


def cv(values: Sequence[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def fraction(text: str) -> float:
    from ..settings import parse_fraction

    try:
        return parse_fraction("value", text)
    except Exception as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pytest_options(args: argparse.Namespace) -> list[str]:
    """The selection options shared by ``refresh`` and ``calibrate``, as pytest options."""
    options = ["--cxr-suite"]  # the built-in latency tests, whatever else the ini collects
    for name in ("backend", "model", "rounds", "warmup", "threads", "max_new_tokens", "studies"):
        value = getattr(args, name, None)
        if value is not None:
            options.append(f"--cxr-{name.replace('_', '-')}={value}")
    if getattr(args, "baseline_dir", None) is not None:
        options.append(f"--cxr-baseline-dir={args.baseline_dir}")
    return options


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", help="'all' or a comma list (default: the ini's cxr_backend)")
    parser.add_argument("--model", help="model preset or checkpoint directory")
    parser.add_argument("--rounds", type=int, help="timed rounds per backend")
    parser.add_argument("--warmup", type=int, help="untimed warm-up rounds")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--max-new-tokens", type=int, help="new tokens per generation")
    parser.add_argument("--studies", help="folder of study *.json files")


class Watcher:
    """A pytest plugin object passed to ``pytest.main``: it snapshots the baseline store that the
    run's settings point to before and after the run, and keeps the session's results."""

    def __init__(self) -> None:
        self.baseline_dir: Path | None = None
        self.before: Snapshot = {}
        self.after: Snapshot = {}
        self.results: dict[str, Any] = {}
        self.settings: Any = None

    def pytest_sessionstart(self, session: Any) -> None:  # after every plugin's configure
        from ..state import session_key

        if session_key in session.config.stash:
            self.settings = session.config.stash[session_key].settings
            self.baseline_dir = self.settings.baseline_dir
            self.before = snapshot(self.baseline_dir)

    def pytest_sessionfinish(self, session: Any) -> None:
        from ..state import results_key

        if results_key in session.config.stash:
            self.results = dict(session.config.stash[results_key].backends)

    def pytest_unconfigure(self, config: Any) -> None:
        if self.baseline_dir is not None:
            self.after = snapshot(self.baseline_dir)


def run_pytest(arguments: list[str], watcher: Watcher) -> int:
    import pytest

    print("cxrperf: pytest " + " ".join(arguments), flush=True)
    return int(pytest.main(arguments, plugins=[watcher]))
