"""Where an OpenVINO backend's time goes, per operation type and stage (README, issue 15).

Compiles the backend with ``PERF_COUNT`` on, generates a few times, and prints the OpenVINO CPU
plugin's per-node timings of the last vision pass, the last prefill and the last decode step,
summed by (node type, kernel). Used to find that decode's attention over the cached prompt, not
its weights, takes half of each decode step on ``bench`` here.

    python scripts/openvino_profile.py --model bench --threads 2 --backend openvino-w8a8-int4

PERF_COUNT itself costs a little time: compare stages with each other, not with the latency table.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from _openvino_experiment import add_common_options, load


def summarise(request: Any, label: str, top: int) -> None:
    """Print one infer request's last profile, summed per (node type, kernel)."""
    seconds: Counter[tuple[str, str]] = Counter()
    count: Counter[tuple[str, str]] = Counter()
    for node in request.get_profiling_info():
        key = (node.node_type, node.exec_type)
        seconds[key] += node.real_time.total_seconds()
        count[key] += 1
    total = sum(seconds.values())
    print(f"{label}: {total * 1000:.2f} ms in {sum(count.values())} nodes")
    for (node_type, kernel), spent in seconds.most_common(top):
        share = spent / total if total else 0.0
        print(
            f"  {spent * 1000:9.3f} ms {share:6.1%}  {count[node_type, kernel]:4d} x "
            f"{node_type} [{kernel}]"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--top", type=int, default=12, help="node kinds listed per stage")
    args = parser.parse_args(argv)
    reference, inputs, base = load(parser, args)
    profiled = type("Profiled", (base,), {"config": {**base.config, "PERF_COUNT": "YES"}})
    runner = profiled(threads=args.threads).prepare(reference, inputs)
    for _ in range(2):
        t = runner.generate(inputs, 32, force_length=True).timings
    print(
        f"{args.backend} on {args.model}, {args.threads} threads (last generation): "
        f"vision {t.vision_s:.3f} s, prefill {t.prefill_s:.3f} s, "
        f"decode {t.per_token_s * 1000:.2f} ms/token"
    )
    summarise(runner._vision, "vision", args.top)
    summarise(runner._prefill_request, "prefill", args.top)
    summarise(runner._decoder, "decode (last step)", args.top)


if __name__ == "__main__":
    main()
