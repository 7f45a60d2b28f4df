"""``cxrperf baselines``: refresh, show, compare and migrate the latency baselines."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from ..gate.baselines import Baseline, BaselineError, BaselineStore
from ..gate.calibration import review_plan
from ..gate.decision import Verdict
from ..gate.judge import judge
from ..gate.plan import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from ..report.table import format_table
from .common import Watcher, add_selection, cv, fraction, print_lines, pytest_options, run_pytest
from .snapshots import Snapshot, load_side, snapshot


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
def refreshed_tests(args: argparse.Namespace) -> list[str]:
    """The pytest arguments that select what a refresh records: the latency tests, and with
    ``--throughput`` the throughput tests too (each backend's worklist at ``--cxr-concurrency``,
    passed through to pytest)."""
    if getattr(args, "throughput", False):
        return ["-m", "cxr_latency or cxr_throughput", "--cxr-throughput"]
    return ["-m", "cxr_latency"]


def cmd_refresh(args: argparse.Namespace, passthrough: list[str]) -> int:
    if args.sessions > 1:
        return refresh_sessions(args, passthrough)
    watcher = Watcher()
    code = run_pytest(
        [*refreshed_tests(args), "--cxr-update-baselines", *pytest_options(args), *passthrough],
        watcher,
    )
    if watcher.baseline_dir is None:
        print("cxrperf: the pytest run did not start the cxrperf plugin; nothing was written")
        return code or 2
    rows, _, errors = change_rows(watcher.before, watcher.after)
    print()
    if rows:
        print(f"baselines in {watcher.baseline_dir} (before -> after):")
        print_lines(format_table(CHANGE_HEADER, rows))
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
        options = pytest_options(argparse.Namespace(**{**vars(args), "baseline_dir": store}))
        for session in range(args.sessions):
            command = [sys.executable, "-m", "pytest", *refreshed_tests(args),
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
    print_lines(format_table(CHANGE_HEADER, rows))
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
    from ..machine import cpu_count, machine_class

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
                f"{cv(record.samples_s):.1%}",
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
    print_lines(format_table(["class", "cpu", "baselines", "models", ""], class_rows))
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
    print_lines(format_table(header, rows))
    marked = "" if here.key in classes else " - none stored for it"
    print(f"* = this machine's class ({here.describe()}){marked}")
    return 2 if errors else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move pre-class baselines recorded on a host like this one into the class layout."""
    from ..gate.baseline_migration import migrate
    from ..machine import legacy_fingerprint, machine_class

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
    print_lines(format_table(CHANGE_HEADER, rows))
    if failures:
        print(
            f"{failures} baseline(s) regressed"
            + (" or improved" if args.fail_on_improvement else "")
        )
    return 1 if failures else (2 if errors else 0)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    baselines = commands.add_parser("baselines", help="refresh, show and compare latency baselines")
    sub = baselines.add_subparsers(dest="action", required=True)

    refresh = sub.add_parser(
        "refresh",
        help="run the latency suite with --cxr-update-baselines and print before -> after",
        description="Other options (and test paths) are passed to pytest unchanged.",
    )
    add_selection(refresh)
    refresh.add_argument("--baseline-dir", help="baseline store (default: the ini, or baselines/)")
    refresh.add_argument(
        "--sessions",
        type=int,
        default=1,
        help="fresh pytest processes whose rounds are merged into each baseline (default 1; "
        "3 averages out the offset one process carries)",
    )
    refresh.add_argument(
        "--throughput",
        action="store_true",
        help="record the throughput baselines too (pass --cxr-concurrency / --cxr-worklist to "
        "pytest for other settings than the default 4 studies in flight, worklist of 8)",
    )
    refresh.set_defaults(run=cmd_refresh, to_pytest=True)

    show = sub.add_parser("show", help="list stored baselines")
    show.add_argument("--baseline-dir", help="baseline store (default: ./baselines)")
    show.add_argument("--model", help="only this model")
    show.add_argument("--backend", help="only this backend")
    show.add_argument("--machine", help="only fingerprints containing this text")
    show.add_argument("--threads", type=int, help="thread setting of 'this machine' (default: all)")
    show.set_defaults(run=cmd_show)

    migrate = sub.add_parser(
        "migrate",
        help="move baselines of the pre-class layout (a host fingerprint) to this host's class",
        description="Files recorded under this host's pre-class fingerprint move to "
        "<cpu-class>/<their environment>/<model>/<backend>.json (schema version 3); files of "
        "other hosts are listed and left.",
    )
    migrate.add_argument("--baseline-dir", help="baseline store (default: ./baselines)")
    migrate.set_defaults(run=cmd_migrate)

    compare = sub.add_parser(
        "compare",
        help="judge store (or file) B against A; exit 1 on a regression",
        description="A and B are baseline stores, files, or git REV:PATH (origin/main:baselines).",
    )
    compare.add_argument("a", help="before: store, file, or REV:PATH")
    compare.add_argument("b", help="after: store, file, or REV:PATH")
    compare.add_argument("--threshold", type=fraction, default=DEFAULT_THRESHOLD)
    compare.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    compare.add_argument("--fail-on-improvement", action="store_true")
    compare.set_defaults(run=cmd_compare)
