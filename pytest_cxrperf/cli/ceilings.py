"""``cxrperf ceilings``: this machine's matmul and bandwidth peaks (measured once, cached)."""

from __future__ import annotations

import argparse

from ..report.table import format_table
from .common import print_lines


def cmd_ceilings(args: argparse.Namespace) -> int:
    from ..ceilings import Sizes, cache_path, ceilings

    sizes = Sizes(seconds=args.seconds) if args.seconds else Sizes()
    measured, cached = ceilings(args.threads, sizes=sizes, refresh=args.refresh)
    rows = [[what, rate, unit] for what, rate, unit in measured.rows()]
    print_lines(format_table(["ceiling", "best", "unit"], rows))
    source = "cached" if cached else "measured now"
    print(
        f"{source}: {measured.threads} threads, machine {measured.fingerprint}, "
        f"environment {measured.environment} ({cache_path(args.threads)})"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    ceilings.set_defaults(run=cmd_ceilings)
