"""``cxrperf``: review and refresh latency baselines, and measure how sharp the gate is here.

    cxrperf baselines refresh [--backend eager,compile] [--rounds 20] [-- PYTEST ARGS]
    cxrperf baselines show [--baseline-dir DIR] [--model tiny] [--backend eager]
    cxrperf baselines compare A B        # directories, files, or git REV:PATH; exit 1 on regression
    cxrperf calibrate [--backend ...] [--rounds 5] [--samples 30]
    cxrperf findings ...
    cxrperf report merge RESULTS.json... [--markdown PATH] [--html PATH] [--json PATH]
    cxrperf ceilings [--threads 2] [--refresh]   # this machine's matmul and bandwidth peaks

``refresh`` and ``calibrate`` run the suite with ``pytest.main`` in this process; options they do
not know are passed through to pytest unchanged (``--cxr-studies=...``, ``-n 2``, test paths).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .gate.baselines import Baseline, BaselineError, BaselineStore, read_baseline
from .gate.decision import REGRESSED, Timings, Verdict
from .gate.judge import judge
from .gate.plan import DEFAULT_ALPHA, DEFAULT_THRESHOLD, Plan
from .report.table import format_table

Snapshot = dict[str, "Baseline | str"]  # relative path -> baseline, or why it cannot be read


# ---- small helpers -----------------------------------------------------------------------------
def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _cv(values: Sequence[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def _fraction(text: str) -> float:
    from .settings import parse_fraction

    try:
        return parse_fraction("value", text)
    except Exception as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pytest_options(args: argparse.Namespace) -> list[str]:
    """The selection options shared by ``refresh`` and ``calibrate``, as pytest options."""
    options = ["--cxr-suite"]  # the built-in latency tests, whatever else the ini collects
    for name in ("backend", "model", "rounds", "warmup", "threads", "max_new_tokens", "studies"):
        value = getattr(args, name, None)
        if value is not None:
            options.append(f"--cxr-{name.replace('_', '-')}={value}")
    if getattr(args, "baseline_dir", None) is not None:
        options.append(f"--cxr-baseline-dir={args.baseline_dir}")
    return options


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", help="'all' or a comma list (default: the ini's cxr_backend)")
    parser.add_argument("--model", help="model preset or checkpoint directory")
    parser.add_argument("--rounds", type=int, help="timed rounds per backend")
    parser.add_argument("--warmup", type=int, help="untimed warm-up rounds")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--max-new-tokens", type=int, help="new tokens per generation")
    parser.add_argument("--studies", help="folder of study *.json files")


class _Watcher:
    """A pytest plugin object passed to ``pytest.main``: it snapshots the baseline store that the
    run's settings point to before and after the run, and keeps the session's results."""

    def __init__(self) -> None:
        self.baseline_dir: Path | None = None
        self.before: Snapshot = {}
        self.after: Snapshot = {}
        self.results: dict[str, Any] = {}
        self.settings: Any = None

    def pytest_sessionstart(self, session: Any) -> None:  # after every plugin's configure
        from .state import session_key

        if session_key in session.config.stash:
            self.settings = session.config.stash[session_key].settings
            self.baseline_dir = self.settings.baseline_dir
            self.before = snapshot(self.baseline_dir)

    def pytest_sessionfinish(self, session: Any) -> None:
        from .state import results_key

        if results_key in session.config.stash:
            self.results = dict(session.config.stash[results_key].backends)

    def pytest_unconfigure(self, config: Any) -> None:
        if self.baseline_dir is not None:
            self.after = snapshot(self.baseline_dir)


def _run_pytest(arguments: list[str], watcher: _Watcher) -> int:
    import pytest

    print("cxrperf: pytest " + " ".join(arguments), flush=True)
    return int(pytest.main(arguments, plugins=[watcher]))


# ---- reading stores: directories, files, git revisions -----------------------------------------
def snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for path, record in BaselineStore(root).records():
        key = path.relative_to(root).as_posix()
        found[key] = record if isinstance(record, Baseline) else str(record)
    return found


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def load_side(spec: str) -> tuple[Snapshot, bool]:
    """A store, one file, or ``REV:PATH`` read from git (``origin/main:baselines``).

    Returns the baselines by path relative to the store root, and whether ``spec`` is one file."""
    import json

    path = Path(spec)
    if path.is_file():
        try:
            return {path.name: read_baseline(path)}, True
        except BaselineError as exc:
            return {path.name: str(exc)}, True
    if path.is_dir():
        return snapshot(path), False
    rev, sep, inside = spec.partition(":")
    if not sep or not rev:
        raise BaselineError(f"{spec}: no such file or directory (nor a git REV:PATH)")
    inside = inside.rstrip("/")
    _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")  # an unknown REV is an error
    try:
        kind = _git("cat-file", "-t", f"{rev}:{inside}").strip()
    except BaselineError:  # the revision has no baselines yet: everything on the other side is new
        return {}, False
    if kind == "blob":
        names, single = [inside], True
    else:
        listed = _git("ls-tree", "-r", "--name-only", rev, "--", inside).splitlines()
        names, single = [n for n in listed if n.endswith(".json")], False
    found: Snapshot = {}
    for name in names:
        key = Path(name).name if single else Path(name).relative_to(inside).as_posix()
        if not single and len(Path(key).parts) != 3:
            continue
        where = f"{rev}:{name}"
        try:
            found[key] = Baseline.from_json(json.loads(_git("show", where)), where)
        except json.JSONDecodeError as exc:
            found[key] = f"{where}: corrupt JSON ({exc.msg} at line {exc.lineno})"
        except BaselineError as exc:
            found[key] = str(exc)
    return found, single


# ---- before -> after ---------------------------------------------------------------------------
def _judge_pair(
    before: Baseline, after: Baseline, threshold: float, alpha: float, fail_on_improvement: bool
) -> Verdict:
    return judge(
        after.backend,
        after.timings(),
        before.timings(),
        review_plan(min(len(before.samples_s), len(after.samples_s)), threshold, alpha),
        missing="fail",
        fail_on_improvement=fail_on_improvement,
    )


def review_plan(rounds: int, threshold: float, alpha: float) -> Plan:
    """One look over every stored round, in batches of 10 (of 1 for short baselines)."""
    batch = 10 if rounds >= 30 else 1
    return Plan(batch, max(1, rounds // batch), 1, threshold, alpha)


def change_rows(
    before: Snapshot,
    after: Snapshot,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    fail_on_improvement: bool = False,
    only_changed: bool = True,
) -> tuple[list[list[str]], int, int]:
    """Rows of a before -> after table; also the number of failing verdicts and unreadable files."""
    rows: list[list[str]] = []
    failures = errors = 0
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if only_changed and isinstance(old, Baseline) and isinstance(new, Baseline) and old == new:
            continue
        for side in (old, new):
            if isinstance(side, str):
                errors += 1
                rows.append([key, "-", "-", "-", "-", "-", f"ERROR: {side}"])
                break
        else:
            if new is None:
                assert isinstance(old, Baseline)
                rows.append([key, f"{old.median_s:.4f}", "removed", "-", "-", "-", "removed"])
                continue
            assert isinstance(new, Baseline)
            if old is None:
                rows.append(
                    [key, "new", f"{new.median_s:.4f}", "-", "-", _speedup(None, new), "new"]
                )
                continue
            assert isinstance(old, Baseline)
            verdict = _judge_pair(old, new, threshold, alpha, fail_on_improvement)
            failures += verdict.failed
            a = verdict.relative or verdict.absolute
            if a is None:  # incomparable: the verdict says why
                rows.append([key, f"{old.median_s:.4f}", f"{new.median_s:.4f}", "-", "-",
                             _speedup(old, new), verdict.short()])  # fmt: skip
                continue
            interval = (
                f"[{a.interval[0]:.3f}, {a.interval[1]:.3f}]" if a.interval is not None else "-"
            )
            change = f"{a.change:+.1%}" + ("" if a.kind == "absolute" else " (rel)")
            rows.append(
                [
                    key,
                    f"{old.median_s:.4f}",
                    f"{new.median_s:.4f}",
                    change,
                    interval,
                    _speedup(old, new),
                    verdict.short(),
                ]
            )
    return rows, failures, errors


def _speedup(old: Baseline | None, new: Baseline) -> str:
    def fmt(b: Baseline | None) -> str:
        return "-" if b is None or b.speedup is None else f"{b.speedup:.2f}x"

    if old is None:
        return fmt(new)
    return f"{fmt(old)} -> {fmt(new)}"


CHANGE_HEADER = ["baseline", "before s", "after s", "change", "interval", "speedup", "verdict"]


# ---- commands ------------------------------------------------------------------------------------
def cmd_refresh(args: argparse.Namespace, passthrough: list[str]) -> int:
    if args.sessions > 1:
        return refresh_sessions(args, passthrough)
    watcher = _Watcher()
    code = _run_pytest(
        ["-m", "cxr_latency", "--cxr-update-baselines", *_pytest_options(args), *passthrough],
        watcher,
    )
    if watcher.baseline_dir is None:
        print("cxrperf: the pytest run did not start the cxrperf plugin; nothing was written")
        return code or 2
    rows, _, errors = change_rows(watcher.before, watcher.after)
    print()
    if rows:
        print(f"baselines in {watcher.baseline_dir} (before -> after):")
        _print(format_table(CHANGE_HEADER, rows))
    else:
        print(f"no baseline in {watcher.baseline_dir} changed")
    return code or (2 if errors else 0)


def merge_sessions(sessions: list[Baseline]) -> Baseline:
    """One baseline holding every session's rounds, in order (the newest session's other facts),
    and where each session's rounds begin (``session_rounds``).

    A single session carries that process's own offset (measured here: eager fp32 over the probe
    1.67 to 1.81 x between fresh processes); merged sessions average it out, and the gate reads
    its size from the spread of the sessions' means (:func:`session_offset_variance`)."""
    from dataclasses import replace

    first, last = sessions[0], sessions[-1]
    if any(b.control != first.control or b.probe_repeats != first.probe_repeats for b in sessions):
        raise BaselineError(f"{last.backend}: sessions were timed against different controls")
    samples = tuple(v for b in sessions for v in b.samples_s)
    pressure = tuple(v for b in sessions for v in b.pressure)
    if len(pressure) != len(samples):
        pressure = ()  # a session without it: none for the merged rounds
    controls = tuple(v for b in sessions for v in (b.control_samples_s or ()))
    known = all(b.session_rounds or b.sessions == 1 for b in sessions)
    rounds = tuple(n for b in sessions for n in (b.session_rounds or (len(b.samples_s),)))
    memory: dict[str, float] = {}
    for b in sessions:  # the largest peak any session saw
        for key, value in b.memory_mib.items():
            memory[key] = max(memory.get(key, 0.0), value)
    return replace(
        last,
        samples_s=samples,
        control_samples_s=controls if controls else None,
        rounds=len(samples),
        sessions=sum(b.sessions for b in sessions),
        session_rounds=rounds if known else (),
        memory_mib=memory,
        pressure=pressure,
    )


def refresh_sessions(args: argparse.Namespace, passthrough: list[str]) -> int:
    """``refresh --sessions N``: N fresh pytest processes, one after another, their rounds merged
    into one baseline per backend and written atomically to the store."""
    import shutil

    root = Path(args.baseline_dir or "baselines")  # as `baselines show` reads it
    before = snapshot(root) if root.is_dir() else {}
    collected: dict[str, list[Baseline]] = {}
    with tempfile.TemporaryDirectory(prefix="cxrperf-sessions-") as work:
        store = Path(work) / "store"
        if root.is_dir():  # the stored probe size carries over: sessions stay comparable
            shutil.copytree(root, store, ignore=shutil.ignore_patterns("*.lock"))
        options = _pytest_options(argparse.Namespace(**{**vars(args), "baseline_dir": store}))
        for session in range(args.sessions):
            command = [sys.executable, "-m", "pytest", "-m", "cxr_latency",
                       "--cxr-update-baselines", *options, *passthrough]  # fmt: skip
            print(f"cxrperf: session {session + 1}/{args.sessions}: " + " ".join(command[1:]))
            previous = snapshot(store)
            code = subprocess.call(command)
            if code != 0:
                print(f"cxrperf: session {session + 1} failed (exit {code}); nothing was written")
                return code
            for key, record in snapshot(store).items():  # what this session wrote
                if isinstance(record, Baseline) and record != previous.get(key):
                    collected.setdefault(key, []).append(record)
    target = BaselineStore(root)
    for _, sessions in sorted(collected.items()):
        target.write(merge_sessions(sessions))
    rows, _, errors = change_rows(before, snapshot(root))
    print()
    print(f"baselines in {root}, {args.sessions} sessions merged (before -> after):")
    _print(format_table(CHANGE_HEADER, rows))
    return 2 if errors else 0


def _store_root(args: argparse.Namespace) -> Path | None:
    root = Path(args.baseline_dir or "baselines")
    if not root.is_dir():
        what = "is a file, not a baseline store folder" if root.exists() else "does not exist"
        print(
            f"cxrperf: {root} {what}; pass --baseline-dir with the store's folder (record "
            "baselines with 'cxrperf baselines refresh')",
            file=sys.stderr,
        )
        return None
    return root


def cmd_show(args: argparse.Namespace) -> int:
    """The machine classes in the store (this host's marked), then every baseline."""
    from .machine import cpu_count, machine_class

    root = _store_root(args)
    if root is None:
        return 2
    here = machine_class(args.threads or cpu_count())
    rows, errors = [], 0
    classes: dict[str, list[Baseline]] = {}
    for path, record in BaselineStore(root).records():
        key = path.relative_to(root).as_posix()
        if isinstance(record, BaselineError):
            errors += 1
            rows.append([key, "", "", "", "", "", "", "", "", f"ERROR: {record}"])
            continue
        if args.model and record.model != args.model:
            continue
        if args.backend and record.backend != args.backend:
            continue
        if args.machine and args.machine not in record.fingerprint:
            continue
        classes.setdefault(record.fingerprint, []).append(record)
        rows.append(
            [
                ("* " if record.fingerprint == here.key else "  ") + record.fingerprint,
                record.model,
                record.backend,
                record.precision,
                str(len(record.samples_s)),
                f"{record.median_s:.4f}",
                f"{_cv(record.samples_s):.1%}",
                _speedup(None, record),
                str(record.new_tokens),
                f"{record.created[:10]} torch {record.libraries.get('torch', '?')}",
            ]
        )
    if not rows:
        print(f"no baselines under {root}")
        print(f"this machine's class: {here.describe()}")
        return 0
    class_rows = []
    for key, records in sorted(classes.items()):
        facts = records[0].class_facts()
        models = sorted({r.model for r in records})
        kind = "pre-class layout: `cxrperf baselines migrate`" if records[0].legacy else ""
        class_rows.append(
            [
                ("* " if key == here.key else "  ") + key,
                facts.microarchitecture or "-",
                str(len(records)),
                ", ".join(models),
                kind,
            ]
        )
    print(f"machine classes in {root}:")
    _print(format_table(["class", "cpu", "baselines", "models", ""], class_rows))
    print()
    header = [
        "machine",
        "model",
        "backend",
        "precision",
        "n",
        "median s",
        "cv",
        "speedup",
        "tokens",
        "recorded",
    ]
    _print(format_table(header, rows))
    marked = "" if here.key in classes else " - none stored for it"
    print(f"* = this machine's class ({here.describe()}){marked}")
    return 2 if errors else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move pre-class baselines recorded on a host like this one into the class layout."""
    from .gate.baselines import migrate
    from .machine import legacy_fingerprint, machine_class

    root = _store_root(args)
    if root is None:
        return 2
    done = migrate(BaselineStore(root), machine_class, legacy_fingerprint)
    if not done:
        print(f"nothing to migrate in {root}: every baseline is stored per machine class")
        return 0
    left = 0
    for item in done:
        where = item.path.relative_to(root).as_posix()
        if item.target is not None:
            print(f"{where} -> {item.target.relative_to(root).as_posix()}")
        else:
            left += 1
            print(f"{where}: {item.reason}")
    print(f"{len(done) - left} migrated, {left} left")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        (before, single_a), (after, single_b) = load_side(args.a), load_side(args.b)
    except BaselineError as exc:
        print(f"cxrperf: {exc}", file=sys.stderr)
        return 2
    if single_a and single_b:  # two files: compare them whatever their names
        (name_a, old), (name_b, new) = next(iter(before.items())), next(iter(after.items()))
        key = name_a if name_a == name_b else f"{name_a} -> {name_b}"
        before, after = {key: old}, {key: new}
    elif single_a != single_b:
        print("cxrperf: compare two files or two stores, not one of each", file=sys.stderr)
        return 2
    rows, failures, errors = change_rows(
        before, after, args.threshold, args.alpha, args.fail_on_improvement, only_changed=False
    )
    if not rows:
        print("no baselines on either side")
        return 0
    print(f"{args.a} -> {args.b} (threshold {args.threshold:.0%}, alpha {args.alpha:g}):")
    _print(format_table(CHANGE_HEADER, rows))
    if failures:
        print(
            f"{failures} baseline(s) regressed"
            + (" or improved" if args.fail_on_improvement else "")
        )
    return 1 if failures else (2 if errors else 0)


def cmd_calibrate(args: argparse.Namespace, passthrough: list[str]) -> int:
    from .settings import DEFAULT_ROUNDS

    rounds = args.rounds or DEFAULT_ROUNDS
    baseline_rounds = args.baseline_rounds or rounds
    samples = max(args.samples, rounds, baseline_rounds)
    watcher = _Watcher()
    with tempfile.TemporaryDirectory(prefix="cxrperf-calibrate-") as empty:
        options = _pytest_options(argparse.Namespace(**{**vars(args), "rounds": samples}))
        code = _run_pytest(
            [
                "-m",
                "cxr_latency",
                f"--cxr-baseline-dir={empty}",
                "-p",
                "no:xdist",
                "-W",
                "ignore::pytest_cxrperf.gate.baselines.BaselineWarning",
                *options,
                *passthrough,
            ],
            watcher,
        )
    measured = {k: r for k, r in watcher.results.items() if r.samples_s}
    if code not in (0, 1) or not measured:
        print("cxrperf: calibration run failed; nothing to report")
        return code or 2
    settings = watcher.settings
    print()
    print(
        f"gate noise on this machine: {samples} rounds measured per backend; the gate compares "
        f"{rounds} rounds with a {baseline_rounds}-round baseline, alpha {args.alpha:g}"
    )
    header = [
        "backend",
        "threshold",
        "cv abs",
        "cv ratio",
        "checks",
        "false alarm",
        "x1.10",
        "x1.25",
        "x1.50",
        f"smallest caught ({args.target:.0%})",
    ]
    rows = []
    for label, result in measured.items():
        name = label.split("+", 1)[0]
        threshold = args.threshold or settings.threshold_for(name)
        control = list(result.control_samples_s)
        cal = calibrate_backend(
            list(result.samples_s),
            control,
            rounds=rounds,
            baseline_rounds=baseline_rounds,
            threshold=threshold,
            alpha=args.alpha,
            trials=args.trials,
            target=args.target,
            control_kind=result.control,
        )
        ratios = [s / c for s, c in zip(result.samples_s, control, strict=True)] if control else []
        rows.append(
            [
                label,
                f"{threshold:.0%}",
                f"{_cv(result.samples_s):.1%}",
                f"{_cv(ratios):.1%}" if ratios else "-",
                f"relative to {result.control}",
                f"{cal['false_alarm']:.1%}",
                f"{cal[1.1]:.0%}",
                f"{cal[1.25]:.0%}",
                f"{cal[1.5]:.0%}",
                f"x{cal['smallest']:.2f}" if cal["smallest"] else "> x3",
            ]
        )
    _print(format_table(header, rows))
    print(
        "simulated by resampling this run's samples (same machine, same minute): real false "
        "alarms across days and runners are higher; scripts/gate_accuracy.py measures them with "
        "repeated runs"
    )
    return 0


def calibrate_backend(
    samples: list[float],
    control: list[float] | None,
    *,
    rounds: int,
    baseline_rounds: int,
    threshold: float,
    alpha: float,
    trials: int = 200,
    target: float = 0.9,
    seed: int = 0,
    control_kind: str = "eager",
) -> dict[Any, Any]:
    """Detection rate of the gate for synthetic slowdowns, by resampling measured rounds (pairs of
    backend and control stay together), and the smallest slowdown caught ``target`` of the time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.asarray(samples, dtype=float)
    ctrl = np.asarray(control, dtype=float) if control is not None else None

    def draw(n: int, factor: float, fingerprint: str) -> Timings:
        index = rng.integers(0, values.size, size=n)
        return Timings(
            tuple(values[index] * factor),
            tuple(ctrl[index]) if ctrl is not None else None,
            fingerprint,
            new_tokens=1,
            control=control_kind,
        )

    def rate(factor: float) -> float:
        hits = 0
        for _ in range(trials):
            base = draw(baseline_rounds, 1.0, "m")
            cur = draw(rounds, factor, "m")
            verdict = judge(
                "b", cur, base, review_plan(min(rounds, baseline_rounds), threshold, alpha)
            )
            hits += verdict.status == REGRESSED
        return hits / trials

    out: dict[Any, Any] = {"false_alarm": rate(1.0)}
    for factor in (1.1, 1.25, 1.5):
        out[factor] = rate(factor)
    # bisection: the detection rate grows with the slowdown (up to simulation noise)
    low, high = 1.0 + threshold, 3.0
    out["smallest"] = None
    if rate(high) >= target:
        while high - low > 0.01:
            middle = (low + high) / 2
            if rate(middle) >= target:
                high = middle
            else:
                low = middle
        out["smallest"] = high
    return out


def cmd_findings(argv: list[str]) -> int:
    try:
        from .findings_cli import findings_main  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"cxrperf findings is not available in this installation ({exc})", file=sys.stderr)
        return 2
    return int(findings_main(argv) or 0)


def cmd_synth(argv: list[str]) -> int:
    """Synthetic stand-ins for a team's own model and studies (what CI runs end to end)."""
    parser = argparse.ArgumentParser(
        prog="cxrperf synth", description="write synthetic checkpoints and DICOM studies"
    )
    sub = parser.add_subparsers(dest="what", required=True)
    ckpt = sub.add_parser("checkpoint", help="a checkpoint in a published layout (--cxr-model)")
    ckpt.add_argument("directory", type=Path)
    ckpt.add_argument("--layout", choices=["maira2"], default="maira2")
    ckpt.add_argument("--preset", default="tiny", help="dimensions (default tiny)")
    ckpt.add_argument("--shards", type=int, default=2)
    ckpt.add_argument("--seed", type=int, default=0)
    dicom = sub.add_parser("dicom", help="phantom studies as DICOM files (--cxr-studies)")
    dicom.add_argument("directory", type=Path)
    dicom.add_argument("--count", type=int, default=2, help="studies (default 2)")
    dicom.add_argument("--size", type=int, default=256, help="image side in pixels")
    dicom.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "checkpoint":
        from .synth.checkpoint import write_maira2_checkpoint

        folder = write_maira2_checkpoint(args.directory, args.preset, args.shards, args.seed)
        print(f"wrote a {args.layout}-layout checkpoint ({args.preset}) to {folder}")
        return 0
    from .synth.dicom import write_dicom_studies

    files = write_dicom_studies(args.directory, args.count, args.size, args.seed)
    print(f"wrote {len(files)} DICOM files under {args.directory}")
    return 0


def cmd_report_merge(args: argparse.Namespace) -> int:
    """One verdict over the ``--cxr-json`` files of several runs (a CI matrix): exit 1 when any
    machine's backend regressed or failed a check, 2 on input that is not cxrperf results."""
    from .atomic import write_json_atomic
    from .report import html, markdown
    from .report.merge import merge_files
    from .report.model import headline
    from .results import ResultsError

    try:
        merged = merge_files(Path(p) for p in args.results)
    except ResultsError as exc:
        print(f"cxrperf report merge: {exc}", file=sys.stderr)
        return 2
    outputs = [(args.markdown, "cxrperf.md"), (args.html, "cxrperf.html"), (args.json, "x.json")]
    for target, example in outputs:
        if target is not None and Path(target).is_dir():
            print(
                f"cxrperf report merge: {target} is a directory; give a file path such as "
                f"{Path(target) / example}",
                file=sys.stderr,
            )
            return 2
    runs = merged.runs
    title, failing, warning = headline(runs)
    print(title)
    _print([f"  FAILED {p}" for p in failing] + [f"  warning: {w}" for w in warning])
    try:
        if args.markdown:
            markdown.write_markdown(Path(args.markdown), runs)
        if args.html:
            html.write_html(Path(args.html), runs)
        if args.json:
            write_json_atomic(Path(args.json), merged.to_dict())
    except OSError as exc:
        print(f"cxrperf report merge: cannot write the report: {exc}", file=sys.stderr)
        return 2
    markdown.append_step_summary(runs)
    return 1 if merged.failed else 0


def cmd_ceilings(args: argparse.Namespace) -> int:
    from .ceilings import Sizes, cache_path, ceilings

    sizes = Sizes(seconds=args.seconds) if args.seconds else Sizes()
    measured, cached = ceilings(args.threads, sizes=sizes, refresh=args.refresh)
    rows = [[what, rate, unit] for what, rate, unit in measured.rows()]
    _print(format_table(["ceiling", "best", "unit"], rows))
    source = "cached" if cached else "measured now"
    print(
        f"{source}: {measured.threads} threads, machine {measured.fingerprint}, "
        f"environment {measured.environment} ({cache_path(args.threads)})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrperf", description="pytest-cxrperf: latency baselines and the regression gate"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    baselines = commands.add_parser("baselines", help="refresh, show and compare latency baselines")
    sub = baselines.add_subparsers(dest="action", required=True)

    refresh = sub.add_parser(
        "refresh",
        help="run the latency suite with --cxr-update-baselines and print before -> after",
        description="Other options (and test paths) are passed to pytest unchanged.",
    )
    _add_selection(refresh)
    refresh.add_argument("--baseline-dir", help="baseline store (default: the ini, or baselines/)")
    refresh.add_argument(
        "--sessions",
        type=int,
        default=1,
        help="fresh pytest processes whose rounds are merged into each baseline (default 1; "
        "3 averages out the offset one process carries)",
    )

    show = sub.add_parser("show", help="list stored baselines")
    show.add_argument("--baseline-dir", help="baseline store (default: ./baselines)")
    show.add_argument("--model", help="only this model")
    show.add_argument("--backend", help="only this backend")
    show.add_argument("--machine", help="only fingerprints containing this text")
    show.add_argument("--threads", type=int, help="thread setting of 'this machine' (default: all)")

    migrate = sub.add_parser(
        "migrate",
        help="move baselines of the pre-class layout (a host fingerprint) to this host's class",
        description="Files recorded under this host's pre-class fingerprint move to "
        "<cpu-class>/<their environment>/<model>/<backend>.json (schema version 3); files of "
        "other hosts are listed and left.",
    )
    migrate.add_argument("--baseline-dir", help="baseline store (default: ./baselines)")

    compare = sub.add_parser(
        "compare",
        help="judge store (or file) B against A; exit 1 on a regression",
        description="A and B are baseline stores, files, or git REV:PATH (origin/main:baselines).",
    )
    compare.add_argument("a", help="before: store, file, or REV:PATH")
    compare.add_argument("b", help="after: store, file, or REV:PATH")
    compare.add_argument("--threshold", type=_fraction, default=DEFAULT_THRESHOLD)
    compare.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    compare.add_argument("--fail-on-improvement", action="store_true")

    calibrate = commands.add_parser(
        "calibrate",
        help="measure noise per backend and the smallest regression the gate would catch",
        description="Other options (and test paths) are passed to pytest unchanged.",
    )
    _add_selection(calibrate)
    calibrate.add_argument("--samples", type=int, default=30, help="rounds measured (default 30)")
    calibrate.add_argument(
        "--baseline-rounds", type=int, help="rounds in a baseline (default: --rounds)"
    )
    calibrate.add_argument("--threshold", type=_fraction, help="default: the ini's, or 10%%")
    calibrate.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    calibrate.add_argument("--trials", type=int, default=200, help="simulated runs per slowdown")
    calibrate.add_argument("--target", type=float, default=0.9, help="detection rate to reach")

    ceilings = commands.add_parser(
        "ceilings",
        help="this machine's fp32/bf16/int8 matmul throughput and memory bandwidth (cached)",
        description="Each ceiling runs a torch kernel for about a second, three times; the best "
        "counts. Cached per machine fingerprint and library environment; the roofline column "
        "of a pytest run's summary and reports reads this cache.",
    )
    ceilings.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ceilings.add_argument("--refresh", action="store_true", help="measure even if cached")
    ceilings.add_argument("--seconds", type=float, help="seconds per repeat (default 1.0)")

    commands.add_parser("findings", help="clinical findings of generated reports", add_help=False)
    commands.add_parser(
        "synth", help="write a synthetic checkpoint or DICOM studies", add_help=False
    )

    report = commands.add_parser("report", help="reports over the results of several runs")
    report_sub = report.add_subparsers(dest="action", required=True)
    merge = report_sub.add_parser(
        "merge",
        help="one verdict, one Markdown and HTML report over several runs' --cxr-json files; "
        "exit 1 when any regressed or failed a check",
        description="Each run keeps its own rows, keyed by machine fingerprint and backend (a "
        "CI matrix: one job per runner type or backend shard). Exit 0: all passed; 1: a "
        "backend regressed or failed equivalence (or memory); 2: unreadable or foreign input.",
    )
    merge.add_argument("results", nargs="+", help="--cxr-json files of the runs")
    merge.add_argument("--markdown", help="write the Markdown summary here")
    merge.add_argument("--html", help="write the self-contained HTML report here")
    merge.add_argument("--json", help="write the merged runs as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["findings"]:
        return cmd_findings(argv[1:])
    if argv[:1] == ["synth"]:
        return cmd_synth(argv[1:])
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    wants_pytest = (args.command, getattr(args, "action", None)) in (
        ("baselines", "refresh"),
        ("calibrate", None),
    )
    if unknown and not wants_pytest:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    passthrough = unknown + passthrough
    if args.command == "calibrate":
        return cmd_calibrate(args, passthrough)
    if args.command == "report":
        return cmd_report_merge(args)
    if args.command == "ceilings":
        return cmd_ceilings(args)
    if args.action == "refresh":
        return cmd_refresh(args, passthrough)
    if args.action == "show":
        return cmd_show(args)
    if args.action == "migrate":
        return cmd_migrate(args)
    return cmd_compare(args)


if __name__ == "__main__":
    sys.exit(main())
