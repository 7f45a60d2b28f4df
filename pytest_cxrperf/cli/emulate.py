"""``cxrperf emulate``: pytest as on a CPU of another class, under QEMU (equivalence, not speed).

    cxrperf emulate [--cpu zen3] [--python PYTHON] [--keep] [-- PYTEST ARGS]

Runs ``python -m pytest`` under ``qemu-x86_64`` emulating the CPU (``zen3``: an AMD EPYC 7763,
AVX2 only, the CPU most hosted CI runners have), with the plugin, torch, inductor, IPEX and
OpenVINO all seeing that CPU. Selects the equivalence tests (``-m cxr_equivalence``; a ``-m`` of
yours wins); with no pytest arguments, of every backend (``--cxr-backend=all``). The baselines
are a throwaway folder. Exit status: pytest's; 4 where it cannot start (no QEMU, an option that
would touch the baseline store). See :mod:`pytest_cxrperf.emulation`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from .common import USAGE_ERROR


def cmd_emulate(args: argparse.Namespace, pytest_args: list[str]) -> int:
    from ..emulation import EMULATED_CPUS, EmulationError, prepare, run_emulated

    cpu = EMULATED_CPUS[args.cpu]
    pytest_args = pytest_args or ["--cxr-backend=all"]
    work = Path(tempfile.mkdtemp(prefix=f"cxrperf-emulate-{cpu.name}-"))
    try:
        try:
            command, env = prepare(cpu, pytest_args, work, python=args.python)
        except EmulationError as exc:
            print(f"cxrperf emulate: error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        print(f"cxrperf emulate: {cpu.model_name} ({cpu.name}): {' '.join(command)}", flush=True)
        return run_emulated(command, env)
    finally:
        if args.keep:
            print(f"cxrperf emulate: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..emulation import EMULATED_CPUS

    parser = commands.add_parser(
        "emulate",
        help="run the equivalence tests as on another CPU class, under QEMU (not for timing)",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cpu", choices=sorted(EMULATED_CPUS), default="zen3", help="the CPU (default zen3)"
    )
    parser.add_argument("--python", help="the interpreter to run pytest in (default: this one)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's folder (cpuinfo, inductor cache)"
    )
    parser.set_defaults(run=cmd_emulate, to_pytest=True)
