"""How often does the latency gate fail an unchanged run, and how often does it catch a slowdown?

Not a timed test: a benchmark of the gate itself, on whole runs (every backend together), as the
main job runs them. Two steps:

1. ``record``: run the real latency campaign (``pytest -m cxr_latency --cxr-backend=all``) several
   times to its cap, each in a fresh process, optionally with neighbour processes loading the
   machine beside it (``--neighbour cpu|cpu2|stream|stream2|cache``: one or two CPU-bound loops,
   one or two loops copying 256 MB (memory bandwidth), one random gather over 24 MB (the L3
   cache)), and keep every round of every backend (``--cxr-json``).
   These are the pools.

2. ``simulate``: many whole runs judged by the gate's own code (``Plan``, ``judge``, the same look
   schedule and early stopping), each pairing a baseline pool with a *different* current pool, so
   that the drift between sessions is in every trial, not just the noise within one. Each side is
   a block bootstrap of its pool (whole batches of consecutive rounds drawn with replacement, all
   backends sharing the draw, so drift within a session is kept). A slowdown of factor F
   multiplies one backend's seconds (for eager fp32, also where it is the control of others).

   * false alarm: share of unchanged whole runs in which *any* backend was judged regressed;
   * caught xF: share of runs in which the slowed backend was judged regressed (worst backend and
     mean over backends);
   * unknown: share of unchanged backend verdicts still "not yet known" at the cap.

Real reruns validate the resampling: ``record`` prints each real run's own verdicts against the
store it was given (``--judge-against``), and ``scripts`` users can run ``pytest`` with
``eager+slow=1.1`` to see the CPU-burning slowdown caught for real.

    python scripts/gate_accuracy.py record --runs 4 --out gate-pools/quiet
    python scripts/gate_accuracy.py record --runs 4 --neighbour cpu --out gate-pools/neighbour
    python scripts/gate_accuracy.py simulate --baseline gate-pools/quiet \\
        --current gate-pools/quiet --current gate-pools/neighbour --trials 400
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FACTORS = (1.10, 1.25, 1.50)
_CPU = "while True: pass"
_STREAM = (
    "import numpy as np\na = np.ones(64 << 20, dtype=np.float32); b = np.empty_like(a)\n"
    "while True: np.copyto(b, a)"
)
_CACHE = (
    "import numpy as np\na = np.ones(6 << 20, dtype=np.float32)\n"
    "i = np.random.default_rng(0).integers(0, a.size, 1 << 20)\nwhile True: a[i].sum()"
)
NEIGHBOURS = {  # what loads the machine beside the run: one process per entry
    "cpu": [_CPU],
    "cpu2": [_CPU, _CPU],
    "stream": [_STREAM],
    "stream2": [_STREAM, _STREAM],
    "cache": [_CACHE],
}


def record(args: argparse.Namespace, extra: list[str]) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # one store for the whole folder: the first run sizes the machine probe, the others reuse its
    # size from the eager baseline it wrote (as a gated run reuses the committed one's)
    store = args.judge_against or str(out / ".store")
    for run in range(args.runs):
        neighbours = [
            subprocess.Popen([sys.executable, "-c", code])
            for code in NEIGHBOURS.get(args.neighbour or "", [])
        ]
        try:
            target = out / f"run-{int(time.time())}-{run}.json"
            command = [
                sys.executable, "-m", "pytest", "-q", "-m", "cxr_latency",
                "--cxr-backend=all", "--benchmark-disable", "-p", "no:cacheprovider",
                f"--cxr-json={target}", f"--cxr-baseline-dir={store}",
                *([] if args.judge_against else ["--cxr-update-baselines"]),
                *extra,
            ]  # fmt: skip
            started = time.perf_counter()
            code = subprocess.call(command, stdout=subprocess.DEVNULL)
            print(
                f"run {run + 1}/{args.runs}: exit {code}, {time.perf_counter() - started:.0f}"
                f" s, {args.neighbour or 'no'} neighbour -> {target}",
                flush=True,
            )
            if args.judge_against and target.exists():
                report = json.loads(target.read_text())
                for label, entry in report["backends"].items():
                    gate = entry.get("latency_gate") or {}
                    rel = gate.get("relative") or {}
                    shift = rel.get("control_shift")
                    moved = f", control {math.expm1(shift):+.0%}" if shift is not None else ""
                    print(
                        f"  {label}: {gate.get('status')} ratio {rel.get('ratio', 0):.3f} "
                        f"after {entry.get('rounds')} rounds{moved}"
                    )
        finally:
            for neighbour in neighbours:
                neighbour.kill()
                neighbour.wait()
    return 0


def load_pools(folders: list[str]) -> list[dict[str, Any]]:
    pools = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            report = json.loads(path.read_text())
            series = {
                label: (entry["samples_s"], entry["control_samples_s"], entry.get("control"))
                for label, entry in report["backends"].items()
                if entry.get("samples_s")
            }
            pools.append({"path": str(path), "series": series, "report": report})
    if not pools:
        raise SystemExit(f"no pool files (*.json) under {folders}")
    return pools


def resample(pool: dict[str, Any], batch: int, rng: random.Random) -> dict[str, Any]:
    """A block bootstrap of a pool: whole batches drawn with replacement, shared by backends."""
    lengths = {len(s[0]) for s in pool["series"].values()}
    n = min(lengths) // batch
    picks = [rng.randrange(n) for _ in range(n)]
    out = {}
    for label, (samples, controls, kind) in pool["series"].items():
        rows = [i for p in picks for i in range(p * batch, (p + 1) * batch)]
        out[label] = ([samples[i] for i in rows], [controls[i] for i in rows], kind)
    return out


def slowed(run: dict[str, Any], target: str | None, factor: float) -> dict[str, Any]:
    if target is None or factor == 1.0:
        return run
    out = {}
    for label, (samples, controls, kind) in run.items():
        s = [v * factor for v in samples] if label == target else samples
        c = [v * factor for v in controls] if (target == "eager" and kind == "eager") else controls
        out[label] = (s, c, kind)
    return out


def judge_run(base: dict[str, Any], cur: dict[str, Any], plan: Any) -> dict[str, tuple[str, int]]:
    """Each backend's final status and the rounds it took, with the gate's looks and stopping."""
    from pytest_cxrperf.gate.decision import Timings
    from pytest_cxrperf.gate.judge import judge

    verdicts = {}
    looks = plan.looks()
    for label, (samples, controls, kind) in cur.items():
        if label not in base:
            continue
        b = base[label]
        baseline = Timings(b[0], b[1], "m", 1, control=b[2] or "eager")
        status, used = "not yet known", 0
        for i, look in enumerate(looks):
            used = min(len(samples), look * plan.batch_rounds)
            current = Timings(samples[:used], controls[:used], "m", 1, control=kind or "eager")
            final = i == len(looks) - 1 or used >= len(samples)
            verdict = judge(label, current, baseline, plan, final=final)
            if verdict.final or final:
                status = verdict.status
                break
        verdicts[label] = (status, used)
    return verdicts


def simulate(args: argparse.Namespace) -> int:
    from pytest_cxrperf.gate.plan import DEFAULT_ALPHA, DEFAULT_THRESHOLD, Plan

    baselines = load_pools(args.baseline)
    currents = load_pools(args.current)
    rng = random.Random(args.seed)
    labels = sorted(set.intersection(*(set(p["series"]) for p in baselines + currents)))
    batch = args.batch_rounds
    cap = min(len(p["series"][labels[0]][0]) for p in currents) // batch
    plan = Plan(batch, cap, len(labels), args.threshold or DEFAULT_THRESHOLD,
                args.alpha or DEFAULT_ALPHA)  # fmt: skip
    alarms = unknown = decided = 0
    rounds_used: list[int] = []
    caught = {(f, label): 0 for f in FACTORS for label in labels}
    targeted = dict.fromkeys(labels, 0)
    for _ in range(args.trials):
        base_pool = rng.choice(baselines)
        cur_pool = rng.choice([p for p in currents if p["path"] != base_pool["path"]])
        base = resample(base_pool, batch, rng)
        cur = resample(cur_pool, batch, rng)
        verdicts = judge_run(base, cur, plan)
        alarms += any(s == "regressed" for s, _ in verdicts.values())
        unknown += sum(s == "not yet known" for s, _ in verdicts.values())
        decided += len(verdicts)
        rounds_used.append(max(n for _, n in verdicts.values()))
        target = rng.choice(labels)
        targeted[target] += 1
        for factor in FACTORS:
            status, _ = judge_run(base, slowed(cur, target, factor), plan)[target]
            caught[(factor, target)] += status == "regressed"
    print(
        f"gate accuracy: {len(baselines)} baseline pool run(s) ({', '.join(args.baseline)}), "
        f"{len(currents)} current pool run(s) ({', '.join(args.current)}), {args.trials} whole "
        f"runs of {len(labels)} backends, threshold {plan.threshold:.0%}, alpha {plan.alpha:g}, "
        f"batches of {batch}, looks at {plan.looks()} batches"
    )
    print(f"false alarm (any backend of an unchanged run regressed): {alarms / args.trials:.2%}"
          f" ({alarms}/{args.trials})")  # fmt: skip
    print(f"unchanged verdicts still 'not yet known' at the cap: {unknown / decided:.1%}")
    rounds_used.sort()
    print(
        f"rounds until every backend had its answer: median {rounds_used[len(rounds_used) // 2]}"
        f", 95th percentile {rounds_used[int(len(rounds_used) * 0.95) - 1]}"
    )
    for factor in FACTORS:
        rates = {label: caught[(factor, label)] / max(1, targeted[label]) for label in labels}
        worst = min(rates, key=lambda k: rates[k])
        mean = sum(caught[(factor, label)] for label in labels) / args.trials
        print(f"caught x{factor:.2f}: {mean:.1%} of runs (worst backend {worst} "
              f"{rates[worst]:.0%} of {targeted[worst]})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "trials": args.trials,
                    "false_alarm": alarms / args.trials,
                    "unknown": unknown / decided,
                    "caught": {
                        f"{f:.2f}": sum(caught[(f, label)] for label in labels) / args.trials
                        for f in FACTORS
                    },
                },
                indent=2,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record pools: whole campaigns to the cap")
    rec.add_argument("--runs", type=int, default=4)
    rec.add_argument("--out", required=True)
    rec.add_argument(
        "--neighbour",
        nargs="?",
        const="cpu",
        choices=sorted(NEIGHBOURS),
        help="load beside each run (alone: cpu)",
    )
    rec.add_argument("--judge-against", help="judge each run against this store instead")
    sim = sub.add_parser("simulate", help="whole runs judged by the gate, resampled from pools")
    sim.add_argument("--baseline", action="append", required=True, help="pool folder(s)")
    sim.add_argument("--current", action="append", required=True, help="pool folder(s)")
    sim.add_argument("--trials", type=int, default=400)
    sim.add_argument("--batch-rounds", type=int, default=10)
    sim.add_argument("--threshold", type=float)
    sim.add_argument("--alpha", type=float)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if args.command == "record":
        return record(args, extra)
    return simulate(args)


if __name__ == "__main__":
    sys.exit(main())
