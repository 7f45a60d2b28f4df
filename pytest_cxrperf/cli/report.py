"""``cxrperf report merge``: one verdict and one report over the results of several runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import print_lines


def cmd_report_merge(args: argparse.Namespace) -> int:
    """One verdict over the ``--cxr-json`` files of several runs (a CI matrix): exit 1 when any
    machine's backend regressed or failed a check, 2 on input that is not cxrperf results."""
    from ..atomic import write_json_atomic
    from ..report import html, markdown
    from ..report.merge import merge_files
    from ..report.model import headline
    from ..results import ResultsError

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
    print_lines([f"  FAILED {p}" for p in failing] + [f"  warning: {w}" for w in warning])
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


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    merge.set_defaults(run=cmd_report_merge)
