"""``cxrperf findings``: print the findings a report states, as JSON.

cxrperf findings "Small left pleural effusion. No pneumothorax."
echo "No acute process." | cxrperf findings -
cxrperf findings --compare "REFERENCE TEXT" "CANDIDATE TEXT"
cxrperf findings --eval test        # score it on the project's evaluation set
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..gate.findings import compare, extract, to_json


def build_parser(prog: str = "cxrperf findings") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Extract CheXpert findings (status and laterality) from report text.",
    )
    parser.add_argument(
        "text",
        nargs="*",
        help="report text (several arguments are joined with spaces); '-' or nothing reads stdin",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="take two texts, REFERENCE and CANDIDATE, and print their differences",
    )
    parser.add_argument(
        "--eval",
        choices=("dev", "test"),
        metavar="SPLIT",
        help="score the extractor and a keyword baseline on the evaluation set's dev or test half",
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")
    return parser


def findings_main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0, or 1 when --compare finds differences)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    indent = args.indent if args.indent > 0 else None
    if args.eval:
        from ..findings_eval import main as eval_main

        return eval_main(["--split", args.eval])
    if args.compare:
        if len(args.text) != 2:
            print("cxrperf findings --compare needs exactly two texts", file=sys.stderr)
            return 2
        reference, candidate = extract(args.text[0]), extract(args.text[1])
        differences = compare(reference, candidate)
        print(
            json.dumps(
                {
                    "reference": to_json(reference),
                    "candidate": to_json(candidate),
                    "equivalent": not differences,
                    "differences": differences,
                },
                indent=indent,
            )
        )
        return 0 if not differences else 1
    text = " ".join(args.text)
    if not args.text or text == "-":
        text = sys.stdin.read()
    print(json.dumps(to_json(extract(text)), indent=indent))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Only listed in ``cxrperf --help``: ``cxrperf findings ...`` goes to :func:`findings_main`,
    which parses its own arguments."""
    commands.add_parser("findings", help="clinical findings of generated reports", add_help=False)
