"""How often does the latency gate cry wolf on this machine, and how often does it catch a slowdown?

Not a timed test: a benchmark of the gate itself. Each trial records a baseline run, then four
"current" runs in random order: one unchanged and three with a synthetic slowdown (x1.10, x1.25,
x1.50, the same SlowedRunner that ``eager+slow=F`` uses). Every run is ROUNDS interleaved pairs
(eager fp32 control, then the backend), as the suite measures them. Each current run is judged
against the trial's baseline with the gate's own decision function, three ways:

* absolute   - samples against the baseline's (the only check the eager reference gets)
* relative   - per-round backend/control ratios (a baseline from another machine)
* combined   - both, as a non-reference backend on its own machine is judged

The false-alarm rate is the share of unchanged runs judged "regressed"; the detection rate the share
of slowed runs judged "regressed". Runs are measured with the largest --rounds and judged on their
first N rounds for each smaller N, so one measurement serves every rounds setting.

    python scripts/gate_accuracy.py --trials 40 --rounds 5,10 --json gate-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import datetime, timezone
from typing import Any

FACTORS = (1.0, 1.10, 1.25, 1.50)
MODES = ("absolute", "relative", "combined")


def measure(candidate: Any, control: Any, inputs: Any, tokens: int, rounds: int, warmup: int):
    samples, controls = [], []

    def timed(runner: Any) -> float:
        start = time.perf_counter()
        runner.generate(inputs, tokens, force_length=True)
        return time.perf_counter() - start

    for _ in range(warmup):
        timed(control)
        timed(candidate)
    for _ in range(rounds):
        controls.append(timed(control))
        samples.append(timed(candidate))
    return samples, controls


def judge_run(
    mode: str, base: tuple, cur: tuple, n_base: int, n: int, threshold: float, alpha: float
):
    from pytest_cxrperf.gate.decision import Timings, judge

    b_samples, b_control = base[0][:n_base], base[1][:n_base]
    c_samples, c_control = cur[0][:n], cur[1][:n]
    if mode == "absolute":  # the reference backend: no control, same machine
        baseline = Timings(b_samples, None, "here", 1, is_reference=True)
        current = Timings(c_samples, None, "here", 1, is_reference=True)
    else:
        where = "elsewhere" if mode == "relative" else "here"
        baseline = Timings(b_samples, b_control, where, 1)
        current = Timings(c_samples, c_control, "here", 1)
    verdict = judge("b", current, baseline, threshold=threshold, alpha=alpha, interval=False)
    return verdict.status == "regressed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--backend", default="eager", help="backend under test (control: eager)")
    parser.add_argument("--rounds", default="5,10", help="comma list of rounds per run")
    parser.add_argument("--baseline-rounds", type=int, help="rounds in a baseline (default: same)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, help="default: all cores")
    parser.add_argument("--threshold", type=float, default=0.10)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from pytest_cxrperf.backends.base import get_backend_class
    from pytest_cxrperf.backends.slowdown import SlowedRunner
    from pytest_cxrperf.machine import cpu_count, fingerprint, library_versions
    from pytest_cxrperf.model.loader import load_model
    from pytest_cxrperf.model.study import load_studies

    rounds_list = sorted({int(r) for r in args.rounds.split(",")})
    most = max([*rounds_list, args.baseline_rounds or 0])
    threads = args.threads or cpu_count()
    torch.set_num_threads(threads)
    reference = load_model(args.model)
    inputs = reference.processor(load_studies(None)[0])
    control = get_backend_class("eager")(threads=threads).prepare(reference, inputs)
    if args.backend == "eager":
        candidate = control
    else:
        candidate = get_backend_class(args.backend)(threads=threads).prepare(reference, inputs)
    rng = random.Random(args.seed)

    counts = {(n, mode, f): 0 for n in rounds_list for mode in MODES for f in FACTORS}
    started = time.perf_counter()
    for trial in range(args.trials):
        base = measure(candidate, control, inputs, args.max_new_tokens, most, args.warmup)
        order = list(FACTORS)
        rng.shuffle(order)
        for factor in order:
            runner = candidate if factor == 1.0 else SlowedRunner(candidate, factor)
            cur = measure(runner, control, inputs, args.max_new_tokens, most, args.warmup)
            for n in rounds_list:
                for mode in MODES:
                    hit = judge_run(
                        mode, base, cur, args.baseline_rounds or n, n, args.threshold, args.alpha
                    )
                    counts[(n, mode, factor)] += hit
        elapsed = time.perf_counter() - started
        print(f"trial {trial + 1}/{args.trials} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    print(
        f"gate accuracy: model {args.model}, backend {args.backend} vs eager control, "
        f"{args.max_new_tokens} new tokens, {threads} threads, threshold {args.threshold:.0%}, "
        f"alpha {args.alpha:g}, {args.trials} trials, machine {fingerprint(threads)}"
    )
    header = ["rounds", "check", "false alarm", "caught x1.10", "caught x1.25", "caught x1.50"]
    rows = []
    for n in rounds_list:
        for mode in MODES:
            rows.append(
                [f"{n} vs {args.baseline_rounds or n}", mode]
                + [
                    f"{hits / args.trials:.0%} ({hits}/{args.trials})"
                    for hits in (counts[(n, mode, f)] for f in FACTORS)
                ]
            )
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "command": " ".join(sys.argv),
                    "machine": fingerprint(threads),
                    "python": platform.python_version(),
                    "libraries": library_versions(),
                    "settings": vars(args),
                    "results": [
                        {
                            "rounds": n,
                            "check": mode,
                            "factor": f,
                            "regressed": counts[(n, mode, f)],
                            "trials": args.trials,
                        }
                        for (n, mode, f) in counts
                    ],
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
