"""Compile-property variants of an OpenVINO backend, interleaved in one process (README, issue 15).

Each variant compiles the backend's IR with extra OpenVINO CPU properties on top of the backend's
own, either for every part or (``--decode-only``) for the decode IR alone, beside the
unchanged backend; then every variant generates the same study in shuffled order each round. It
prints each variant's stage medians and whether its tokens match the unchanged backend's.

    python scripts/openvino_variants.py --model bench --threads 2 --rounds 4 \\
        --backend openvino-w8a8-int4 kv-bf16=KV_CACHE_PRECISION:bf16 \\
        denormals=CPU_DENORMALS_OPTIMIZATION:YES

    python scripts/openvino_variants.py --decode-only --rounds 4 \\
        f32=INFERENCE_PRECISION_HINT:f32

A measurement tool, not a test: run it on a quiet machine (nothing else on the cores).
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter
from typing import Any

from _openvino_experiment import add_common_options, load, shuffled_rounds

from pytest_cxrperf.backends.openvino_export import DECODER_FILE
from pytest_cxrperf.backends.openvino_paged import PagedRunner, to_paged


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name=KEY:VALUE,KEY:VALUE`` -> (name, properties)."""
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=KEY:VALUE[,KEY:VALUE...], got {text!r}")
    properties = {}
    for item in filter(None, spec.split(",")):
        key, colon, value = item.partition(":")
        if not colon:
            raise argparse.ArgumentTypeError(f"expected KEY:VALUE in {text!r}, got {item!r}")
        properties[key] = value
    return name, properties


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", type=parse_variant, metavar="NAME=KEY:VALUE,...")
    add_common_options(parser)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--decode-only", action="store_true", help="vary the decode IR alone")
    args = parser.parse_args(argv)
    reference, inputs, base_cls = load(parser, args)
    import openvino as ov

    backend = base_cls(threads=args.threads)
    runners: dict[str, Any] = {"unchanged": backend.prepare(reference, inputs)}
    core = ov.Core()
    for name, properties in args.variants:
        if args.decode_only:
            config = {**backend.compile_config(), **properties}
            path = f"{backend.prepare_info.details['cache_dir']}/{DECODER_FILE}"
            model = core.read_model(path)
            runner_class = type(runners["unchanged"])
            if runner_class is PagedRunner:  # the decode IR must share the prompt IR's cache
                model = to_paged(model)
            decoder = core.compile_model(model, "CPU", config)
            parts = runners["unchanged"].compiled
            runner = runner_class(
                parts["vision"], parts["embed"], parts["prefill"], decoder, reference.processor
            )
        else:
            variant = type(
                f"Variant_{name}", (base_cls,), {"config": {**base_cls.config, **properties}}
            )
            runner = variant(threads=args.threads).prepare(reference, inputs)
        runner.generate(inputs, 4, force_length=True)
        runners[name] = runner
        print(f"prepared {name}: {properties}", flush=True)

    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in runners}
    tokens: dict[str, list[int]] = {}
    for name in shuffled_rounds(runners, args.rounds):
        start = perf_counter()
        generation = runners[name].generate(inputs, args.new_tokens, force_length=True)
        total = perf_counter() - start
        t = generation.timings
        rows[name].append((total, t.vision_s, t.prefill_s, t.per_token_s * 1000))
        tokens[name] = generation.token_ids
    print(f"{args.backend} on {args.model}, {args.threads} threads, {args.rounds} rounds, medians:")
    for name, samples in rows.items():
        total, vision, prefill, decode = (
            statistics.median(column) for column in zip(*samples, strict=True)
        )
        same = "same tokens" if tokens[name] == tokens["unchanged"] else "DIFFERENT tokens"
        print(
            f"  {name:12s} total {total:.3f} s  vision {vision:.3f} s  prefill {prefill:.3f} s  "
            f"decode {decode:.2f} ms/token  ({same})"
        )


if __name__ == "__main__":
    main()
