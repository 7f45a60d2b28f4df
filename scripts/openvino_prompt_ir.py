"""What the prompt IR's two changes buy, measured apart (README, issue 15).

Traces the reference decoder for a whole prompt in several forms, compiles each with the
backend's properties (f32 weights: the forms differ in their graph only), and times prefill of the
first phantom study's prompt, every form once per round in shuffled order:

* ``with-past``: the stateful decoder made stateless again and fed an empty past, what prefill
  ran on before exporter version 2;
* ``no-past``: the same with its past inputs fixed empty (``openvino_export.prompt_only``);
* ``blocks-N``: ``openvino_export.convert_prefill`` with causal attention in N query blocks
  (what ``prefill.xml`` holds, with N = ``prompt_attention.PROMPT_BLOCKS``).

It prints each form's prefill median, the median of its per-round change against ``with-past``,
and the relative L2 distance of its last-position logits to
``with-past``'s.

    python scripts/openvino_prompt_ir.py --model bench --threads 2 --rounds 10 --blocks 2 3 4

A measurement tool, not a test: run it on a quiet machine (nothing else on the cores).
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from time import perf_counter

import numpy as np
from _openvino_experiment import add_common_options, load, shuffled_rounds

from pytest_cxrperf.backends.openvino_export import (
    convert_decoder,
    convert_prefill,
    empty_past,
    prompt_only,
    stateless_copy,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.set_defaults(backend="openvino")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2])
    args = parser.parse_args(argv)
    reference, inputs, base_cls = load(parser, args)
    import openvino as ov

    backend = base_cls(threads=args.threads)
    runner = backend.prepare(reference, inputs)  # for its embeddings: the prompt each form runs
    embeds = runner._embed_prompt(inputs.input_ids, runner._encode(inputs.pixel_values))
    feed = runner._feed(embeds, 0, np.array([embeds.shape[1] - 1], dtype=np.int64))
    model = reference.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's shape warnings (see openvino_export)
        forms = {
            "with-past": stateless_copy(convert_decoder(model)),
            "no-past": prompt_only(stateless_copy(convert_decoder(model))),
            **{f"blocks-{n}": convert_prefill(model, n) for n in args.blocks},
        }
    core = ov.Core()
    requests, feeds = {}, {}
    for name, form in forms.items():
        requests[name] = core.compile_model(form, "CPU", backend.compile_config())
        requests[name] = requests[name].create_infer_request()
        feeds[name] = {**feed, **empty_past(form)}  # with-past: an empty cache, as prefill fed it
        requests[name].infer(feeds[name])  # first-inference kernel creation

    seconds: dict[str, list[float]] = {name: [] for name in forms}
    logits: dict[str, np.ndarray] = {}
    for name in shuffled_rounds(forms, args.rounds):
        start = perf_counter()
        requests[name].infer(feeds[name])
        seconds[name].append(perf_counter() - start)
        logits[name] = requests[name].get_tensor("logits").data[0, -1].astype(np.float32)
    base = logits["with-past"]
    print(
        f"{args.backend} properties, f32 weights, {args.model}, {args.threads} threads, "
        f"{embeds.shape[1]}-token prompt, {args.rounds} rounds, prefill medians:"
    )
    for name, samples in seconds.items():
        distance = float(np.linalg.norm(logits[name] - base) / np.linalg.norm(base))
        # the same round's with-past run as reference: a shared machine drifts between rounds
        paired = [a / b - 1 for a, b in zip(samples, seconds["with-past"], strict=True)]
        print(
            f"  {name:10s} {statistics.median(samples):.3f} s, paired change vs with-past "
            f"{statistics.median(paired):+.1%} (logits {distance:.2%} from with-past, top token "
            f"{'same' if logits[name].argmax() == base.argmax() else 'DIFFERENT'})"
        )


if __name__ == "__main__":
    main()
