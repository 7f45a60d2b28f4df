"""``cxrperf throughput``: a worklist at several concurrencies per backend, for capacity planning.

    cxrperf throughput --backend eager,eager-bf16 --concurrency 1,2,4,8 [--worklist 16]
        [--model toy] [--studies DIR] [--max-new-tokens 32] [--threads 2] [--cost-per-hour 0.85]
        [--repeats 1] [--json PATH]

Prints, per backend, studies/hour, tokens/s and per-study latency p50/p95/p99 under each
concurrency (:mod:`pytest_cxrperf.throughput`), the knee of the curve and, with a cost, the cost
per 1,000 reports. Every level is one worklist through
:func:`pytest_cxrperf.backends.batching.run_batched`: static batches for the torch backends,
continuous batching for the paged OpenVINO ones, one study after another where a backend has no
batched path (the mode is printed). Before any timing, every study's report from the worklist at
the widest level is checked against the same backend's single-study report. Levels are interleaved
(``--repeats`` rounds, each level once per round in shuffled order; the median counts), so a
machine's drift does not fall on one level. Bad options are a usage error (exit 4) before any
model is built.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

from ..backends.registry import REFERENCE_BACKEND
from .common import USAGE_ERROR


def _fail(message: str) -> int:
    print(f"cxrperf throughput: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def _checked(args: argparse.Namespace) -> tuple[list[str], list[int], float | None] | str:
    """The backends, levels and cost, or why the options are wrong (nothing is built yet)."""
    from ..backends.registry import backend_names
    from ..throughput import parse_concurrency, parse_cost

    if args.worklist < 1:
        return f"--worklist {args.worklist}: at least 1 study"
    if args.max_new_tokens < 1:
        return f"--max-new-tokens {args.max_new_tokens}: at least 1"
    if args.repeats < 1:
        return f"--repeats {args.repeats}: at least 1"
    names = [n.strip() for n in args.backend.split(",") if n.strip()]
    unknown = [n for n in names if n not in backend_names()]
    if not names or unknown:
        return f"--backend {args.backend!r}: unknown {unknown or 'empty'}; known: {backend_names()}"
    try:
        levels = parse_concurrency(args.concurrency, args.worklist)
        cost = parse_cost(args.cost_per_hour)
    except ValueError as exc:
        return str(exc)
    from ..errors import CxrPerfError
    from ..validation import check_worklist_fits

    try:  # the widest level must fit in memory (from the model's config: nothing is built)
        check_worklist_fits(args.model, args.studies, max(levels), args.max_new_tokens)
    except CxrPerfError as exc:
        return str(exc).replace("--cxr-concurrency=", "--concurrency ")
    return names, levels, cost


def _batched_equals_single(
    runner: Any, items: list[Any], concurrency: int, tokens: int, tie: float
) -> list[str]:
    """Where the worklist run with ``concurrency`` in flight says something else than each study
    alone (empty: nothing). Natural lengths, so continuous batching admits studies as others end;
    a runner without a batched path runs ``generate`` itself and is not checked."""
    from ..backends.batching import has_batched_path, run_batched
    from ..gate.equivalence import compare_tokens

    if not has_batched_path(runner):
        return []
    run = run_batched(runner, items, concurrency, tokens)
    alone: dict[str, Any] = {}
    problems = []
    for single_inputs, batched in zip(items, run.outputs, strict=True):
        name = single_inputs.study_name
        if name not in alone:
            alone[name] = runner.generate(single_inputs, tokens, return_logits=True)
        reference = alone[name]
        check = compare_tokens(reference.token_ids, batched.token_ids, reference.step_logits, tie)
        if not check.ok:
            problems.append(f"{name}: {check.message}")
    return problems


def _warm_up(runner: Any, items: list[Any], levels: list[int], tokens: int) -> None:
    """One batch at every batch size the levels produce (1 included: a worklist's last batch may
    hold one study), so that no compilation (``compile``'s decoder specialises batch 1 apart
    from larger ones) lands in a timed level."""
    from ..backends.batching import run_batched

    for size in sorted({1, *levels}):
        run_batched(runner, items[:size], size, tokens, force_length=True)


class _Progress:
    """The sweep's progress bar on standard error: redrawn in place on a terminal, a line per
    finished level elsewhere (a CI log gets no carriage returns)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = perf_counter()
        self.doing = ""
        self.live = sys.stderr.isatty()

    def _line(self, doing: str) -> str:
        from ..throughput import progress_line

        return progress_line(self.done, self.total, perf_counter() - self.started, doing)

    def show(self, doing: str) -> None:
        self.doing = doing
        if self.live:
            print(f"\r\033[K{self._line(doing + ' ...')}", end="", file=sys.stderr, flush=True)

    def step(self) -> None:
        self.done += 1
        if not self.live:
            print(self._line(self.doing), file=sys.stderr, flush=True)

    def close(self, doing: str) -> None:
        if self.live:
            print(f"\r\033[K{self._line(doing)}", file=sys.stderr, flush=True)


def cmd_throughput(args: argparse.Namespace) -> int:
    checked = _checked(args)
    if isinstance(checked, str):
        return _fail(checked)
    names, levels, cost = checked
    from ..backends.batching import batch_mode, run_batched
    from ..backends.registry import get_backend_class
    from ..gate.equivalence import tolerances_for
    from ..model.loader import load_model
    from ..model.study import load_studies
    from ..throughput import Throughput, curve_lines, knee, worklist

    reference = load_model(args.model)
    studies = load_studies(args.studies)
    inputs = [reference.processor(study) for study in studies]
    order = worklist(len(inputs), args.worklist, seed=args.seed)
    items = [inputs[i] for i in order]
    report: dict[str, Any] = {"model": args.model, "worklist": args.worklist, "backends": {}}
    failed = False
    for name in names:
        backend = get_backend_class(name)(threads=args.threads)
        availability = backend.availability()
        if not availability.ok:
            print(f"{name}: not run: {availability.reason}")
            failed = True
            continue
        runner = backend.prepare(reference, inputs[0])
        tie = tolerances_for(backend.precision, name).tie_margin
        problems = _batched_equals_single(runner, items, max(levels), args.max_new_tokens, tie)
        if problems:
            failed = True
            print(f"{name}: batched reports differ from single-study reports:")
            for problem in problems:
                print(f"  {problem}")
        _warm_up(runner, items, levels, args.max_new_tokens)
        runs: dict[int, list[Throughput]] = {level: [] for level in levels}
        shuffle = random.Random(args.seed)
        progress = _Progress(args.repeats * len(levels))
        for round_index in range(args.repeats):
            for level in shuffle.sample(levels, len(levels)):
                progress.show(
                    f"{name}: round {round_index + 1}/{args.repeats}, concurrency {level}"
                )
                run = run_batched(runner, items, level, args.max_new_tokens, force_length=True)
                runs[level].append(Throughput.from_run(name, run))
                progress.step()
        progress.close(f"{name}: done")
        curve = [
            sorted(points, key=lambda p: p.studies_per_hour)[len(points) // 2]
            for points in runs.values()
        ]
        bend = knee(curve)
        mode = batch_mode(runner)
        print(f"{name} ({backend.precision}; worklist of {args.worklist} studies): {mode}")
        for line in curve_lines(curve, cost):
            print(f"  {line}")
        sequential = next(p for p in curve if p.concurrency == min(levels))
        best = max(curve, key=lambda p: p.studies_per_hour)
        print(
            f"  knee at concurrency {bend.concurrency}; best {best.studies_per_hour:.0f} "
            f"studies/h at {best.concurrency}, "
            f"{best.studies_per_hour / sequential.studies_per_hour:.2f}x concurrency "
            f"{sequential.concurrency}"
            + (
                f" (median of {args.repeats} interleaved rounds; spread "
                f"{statistics.pstdev(p.studies_per_hour for p in runs[best.concurrency]):.0f})"
                if args.repeats > 1
                else ""
            )
        )
        report["backends"][name] = {
            "precision": backend.precision,
            "batched": curve[0].batched,
            "mode": mode,
            "batched_equals_single": not problems,
            "knee": bend.concurrency,
            "curve": [p.to_dict(cost) for p in curve],
        }
    if args.json:
        from ..atomic import write_json_atomic

        write_json_atomic(Path(args.json), report)
        print(f"written: {args.json}")
    return 1 if failed else 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "throughput",
        help="studies/hour and latency p50/p95/p99 per concurrency (capacity planning)",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        default=REFERENCE_BACKEND,
        help=f"comma-separated (default {REFERENCE_BACKEND})",
    )
    parser.add_argument("--concurrency", default="1,2,4", help="levels, e.g. 1,2,4,8")
    parser.add_argument("--worklist", type=int, default=8, help="studies in the worklist")
    parser.add_argument("--model", default="toy", help="preset or checkpoint directory")
    parser.add_argument("--studies", help="study folder (default: the shipped samples)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cost-per-hour", help="machine cost per hour: adds cost per 1,000")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds per level")
    parser.add_argument("--seed", type=int, default=0, help="worklist order")
    parser.add_argument("--json", help="write the curves as JSON here")
    parser.set_defaults(run=cmd_throughput)
