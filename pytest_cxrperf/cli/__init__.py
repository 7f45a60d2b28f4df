"""``cxrperf``: review and refresh latency baselines, and measure how sharp the gate is here.

    cxrperf baselines refresh [--backend eager,compile] [--rounds 20] [-- PYTEST ARGS]
    cxrperf baselines show [--baseline-dir DIR] [--model tiny] [--backend eager]
    cxrperf baselines compare A B        # directories, files, or git REV:PATH; exit 1 on regression
    cxrperf calibrate [--backend ...] [--rounds 5] [--samples 30]
    cxrperf findings ...
    cxrperf report merge RESULTS.json... [--markdown PATH] [--html PATH] [--json PATH]
    cxrperf ceilings [--threads 2] [--refresh]   # this machine's matmul and bandwidth peaks
    cxrperf throughput --backend eager --concurrency 1,2,4   # studies/hour and p95 per level
    cxrperf emulate [--cpu zen3] [-- PYTEST ARGS]   # equivalence as on an AVX2 CPU, under QEMU

``refresh`` and ``calibrate`` run the suite with ``pytest.main`` in this process; options they do
not know are passed through to pytest unchanged (``--cxr-studies=...``, ``-n 2``, test paths).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import baselines, calibrate, ceilings, emulate, findings, report, synth, throughput

# The command table: each module adds its own sub-parser (``add_parser``), in the order that
# ``cxrperf --help`` lists them. A parsed command runs ``args.run``; one with ``to_pytest`` set
# also gets the options it does not know, for pytest.
COMMANDS = (baselines, calibrate, ceilings, findings, synth, report, throughput, emulate)
# Commands that parse their own arguments: the top parser only lists them.
OWN_ARGUMENTS: dict[str, Callable[[list[str]], int]] = {
    "findings": findings.findings_main,
    "synth": synth.cmd_synth,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrperf", description="pytest-cxrperf: latency baselines and the regression gate"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in OWN_ARGUMENTS:
        return int(OWN_ARGUMENTS[argv[0]](argv[1:]) or 0)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    wants_pytest = getattr(args, "to_pytest", False)
    if unknown and not wants_pytest:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    passthrough = unknown + passthrough
    if wants_pytest:
        return int(args.run(args, passthrough))
    return int(args.run(args))
