"""``cxrperf calibrate``: measure noise per backend here, and how sharp the gate is on it (the
simulation is :mod:`pytest_cxrperf.gate.calibration`)."""

from __future__ import annotations

import argparse
import tempfile

from ..gate.calibration import calibrate_backend
from ..gate.plan import DEFAULT_ALPHA
from ..report.table import format_table
from .common import Watcher, add_selection, cv, fraction, print_lines, pytest_options, run_pytest


def cmd_calibrate(args: argparse.Namespace, passthrough: list[str]) -> int:
    from ..settings import DEFAULT_ROUNDS

    rounds = args.rounds or DEFAULT_ROUNDS
    baseline_rounds = args.baseline_rounds or rounds
    samples = max(args.samples, rounds, baseline_rounds)
    watcher = Watcher()
    with tempfile.TemporaryDirectory(prefix="cxrperf-calibrate-") as empty:
        options = pytest_options(argparse.Namespace(**{**vars(args), "rounds": samples}))
        code = run_pytest(
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
                f"{cv(result.samples_s):.1%}",
                f"{cv(ratios):.1%}" if ratios else "-",
                f"relative to {result.control}",
                f"{cal['false_alarm']:.1%}",
                f"{cal[1.1]:.0%}",
                f"{cal[1.25]:.0%}",
                f"{cal[1.5]:.0%}",
                f"x{cal['smallest']:.2f}" if cal["smallest"] else "> x3",
            ]
        )
    print_lines(format_table(header, rows))
    print(
        "simulated by resampling this run's samples (same machine, same minute): real false "
        "alarms across days and runners are higher; scripts/gate_accuracy.py measures them with "
        "repeated runs"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="measure noise per backend and the smallest regression the gate would catch",
        description="Other options (and test paths) are passed to pytest unchanged.",
    )
    add_selection(calibrate)
    calibrate.add_argument("--samples", type=int, default=30, help="rounds measured (default 30)")
    calibrate.add_argument(
        "--baseline-rounds", type=int, help="rounds in a baseline (default: --rounds)"
    )
    calibrate.add_argument("--threshold", type=fraction, help="default: the ini's, or 10%%")
    calibrate.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    calibrate.add_argument("--trials", type=int, default=200, help="simulated runs per slowdown")
    calibrate.add_argument("--target", type=float, default=0.9, help="detection rate to reach")
    calibrate.set_defaults(run=cmd_calibrate, to_pytest=True)
